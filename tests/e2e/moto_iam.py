"""Test support for tests/e2e/aws_iam.rs (not shipped): moto with IAM enforcement on, and
the IAM and STS calls the test makes (fleetform has no IAM client, and the test crate
adds none). Run with the Python that has moto (`.ci/venv/bin` first on PATH).

  serve -H HOST -p PORT      moto_server, logging every authorization decision it makes
                             as one JSON line to $FLEETFORM_MOTO_AUTHZ_LOG
  admin                      create an IAM user with an administrator policy and an
                             access key; print {"key", "secret", "arn"}
  put-role-policies FILE     as the admin: iam:PutRolePolicy for each {"role", "name",
                             "document"} in the JSON list FILE
  assume ROLE_ARN...         as the admin: sts:AssumeRole each; print a list of
                             {"key", "secret", "token"}
  create-bucket NAME         as the admin: s3:CreateBucket

The admin's credentials come from ADMIN_KEY / ADMIN_SECRET; the endpoint and region from
AWS_ENDPOINT_URL / AWS_REGION.

Why the decision log is made by wrapping moto's own check: moto's request log says
neither the action nor the caller. The wrapper records what moto decided (caller ARN,
IAM action, the resource moto evaluated, allow/deny) and changes nothing.
"""

import json
import os
import sys
import threading


def serve(argv):
    from moto.iam import access_control
    from moto.server import main

    path = os.environ["FLEETFORM_MOTO_AUTHZ_LOG"]
    lock = threading.Lock()
    checked = access_control.IAMRequestBase.check_action_permitted

    def record(request, resource, decision):
        line = json.dumps(
            {
                "principal": request._access_key.arn,
                "action": request._action,
                "resource": resource,
                "decision": decision,
            }
        )
        with lock, open(path, "a") as f:
            f.write(line + "\n")

    def logged(self, resource):
        try:
            checked(self, resource)
        except Exception as e:
            denied = "AccessDenied" in type(e).__name__
            record(self, resource, "deny" if denied else f"error {type(e).__name__}: {e}")
            raise
        record(self, resource, "allow")

    signed = access_control.IAMRequestBase.check_signature

    def signature_logged(self):
        try:
            signed(self)
        except Exception as e:
            record(self, None, f"bad signature {type(e).__name__}")
            raise

    access_control.IAMRequestBase.check_action_permitted = logged
    access_control.IAMRequestBase.check_signature = signature_logged
    main(argv)


def client(service, key=None, secret=None, token=None):
    import boto3

    return boto3.client(
        service,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ["AWS_REGION"],
        aws_access_key_id=key or os.environ["ADMIN_KEY"],
        aws_secret_access_key=secret or os.environ["ADMIN_SECRET"],
        aws_session_token=token,
    )


def admin():
    # Made while the server is still open (before enforcement): any key is accepted.
    iam = client("iam", "bootstrap", "bootstrap")
    user = iam.create_user(UserName="fleetform-admin")["User"]
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="fleetform-admin", PolicyName="admin", PolicyDocument=json.dumps(everything))
    key = iam.create_access_key(UserName="fleetform-admin")["AccessKey"]
    print(json.dumps({"key": key["AccessKeyId"], "secret": key["SecretAccessKey"], "arn": user["Arn"]}))


def put_role_policies(path):
    iam = client("iam")
    with open(path) as f:
        for p in json.load(f):
            iam.put_role_policy(RoleName=p["role"], PolicyName=p["name"], PolicyDocument=json.dumps(p["document"]))


def assume(arns):
    sts = client("sts")
    out = []
    for arn in arns:
        c = sts.assume_role(RoleArn=arn, RoleSessionName="fleetform-e2e")["Credentials"]
        out.append({"key": c["AccessKeyId"], "secret": c["SecretAccessKey"], "token": c["SessionToken"]})
    print(json.dumps(out))


def create_bucket(name):
    region = os.environ["AWS_REGION"]
    client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "serve":
        serve(args)
    elif command == "admin":
        admin()
    elif command == "put-role-policies":
        put_role_policies(args[0])
    elif command == "assume":
        assume(args)
    elif command == "create-bucket":
        create_bucket(args[0])
    else:
        sys.exit(f"moto_iam.py: unknown command {command}")
