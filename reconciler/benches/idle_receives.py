"""Idle-agent SQS cost and task pickup latency, on a moto server (loopback only).

    python3 reconciler/benches/idle_receives.py AGENT_BINARY [--seconds 60] [--classes 1]

Starts moto (from PATH: .ci/venv/bin), creates the cluster's class queues, starts one
`fleetform-agent` (1 slot) against them and counts, over an idle minute, the SQS requests
the agent makes (every `POST /` in moto's request log; S3 heartbeats are PUTs). Then sends
five tasks one at a time, each a body the agent cannot parse (it dead-letters it at once,
needing no job record), and reports how long each took from SendMessage to its arrival in
the dead-letter queue: an upper bound of the pickup latency. Works for any agent binary,
so an older build can be measured beside a newer one.
"""
import argparse, os, re, socket, subprocess, sys, tempfile, time

import boto3

p = argparse.ArgumentParser()
p.add_argument("agent")
p.add_argument("--seconds", type=float, default=60)
p.add_argument("--classes", type=int, default=1)
a = p.parse_args()

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
log = tempfile.NamedTemporaryFile("w+", suffix=".moto.log", delete=False)
moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
endpoint = f"http://127.0.0.1:{port}"
env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close(); break
    except OSError:
        time.sleep(0.1)
sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
s3.create_bucket(Bucket="store")
classes = ["default"] + [f"c{i}" for i in range(1, a.classes)]
urls = {}
for c in classes:
    dlq = sqs.create_queue(QueueName=f"fleetform-bench-{c}-dlq")["QueueUrl"]
    urls[c] = (sqs.create_queue(QueueName=f"fleetform-bench-{c}")["QueueUrl"], dlq)
resources = "{" + ",".join(["\"CPU\":1"] + [f"\"{c}\":1" for c in classes[1:]]) + "}"
spill = tempfile.mkdtemp()
agent = subprocess.Popen([a.agent, "--store", "s3://store/cluster", "--queue", "sqs://bench", "--resources", resources,
                          "--spill-dir", spill, "--node-id", "bench-node", "--imds-endpoint", "http://127.0.0.1:9"],
                         env=env, stdout=subprocess.DEVNULL, stderr=open(spill + "/agent.log", "w"))

def sqs_requests():
    log.flush()
    return sum(1 for l in open(log.name, errors="replace") if re.search(r'"POST / HTTP', l))

time.sleep(10)  # start-up: queue URLs, first heartbeat
before = sqs_requests()
time.sleep(a.seconds)
idle = sqs_requests() - before
print(f"idle SQS requests: {idle} in {a.seconds:.0f} s = {idle * 60 / a.seconds:.1f}/min for {len(classes)} class(es)")
lat = []
for i in range(5):
    q, dlq = urls["default"]
    time.sleep(1.3 + 0.7 * i)  # land at different points of the agent's poll cycle
    t0 = time.monotonic()
    sqs.send_message(QueueUrl=q, MessageBody=f"not a task {i}")
    while not sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages"):
        time.sleep(0.005)
    lat.append(time.monotonic() - t0)
print("pickup (send -> dead-lettered), s: " + ", ".join(f"{x:.3f}" for x in lat) + f"; mean {sum(lat) / len(lat):.3f}")
agent.terminate(); agent.wait(timeout=60); moto.terminate()
