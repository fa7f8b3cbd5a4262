"""Test support for tests/e2e/aws_iam.rs (not shipped): moto with IAM enforcement on, and
the IAM and STS calls the test makes (fleetform has no IAM client, and the test crate
adds none). Run with the Python that has moto (`.ci/venv/bin` first on PATH).

  serve -H HOST -p PORT      moto_server, logging every authorization decision it makes
                             as one JSON line to $FLEETFORM_MOTO_AUTHZ_LOG, with what
                             the request carried (`request`: its parameters, for
                             tests/e2e/iam_eval.py)
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
IAM action, the resource moto evaluated, allow/deny) and changes nothing. It also records
the request's parameters (query protocol: the form; JSON protocols: the body; S3: the
path and query), because moto evaluates no condition and tests/e2e/iam_eval.py rebuilds
from them the request context AWS would authorize (tags, launch template, subnets...).
"""

import json
import os
import sys
import threading
from urllib.parse import parse_qs, urlsplit


def _single(values):
    """parse_qs gives lists; a parameter of the query protocol appears once."""
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def carried(request):
    """What one request carried, from moto's IAMRequestBase (moto/iam/access_control.py):
    `_path` has the query string, `_body` the raw body, `_headers` the HTTP headers, and
    `_data` moto's parse of a form body (werkzeug consumed the body itself, so `_body` is
    empty then; moto/core/responses.py `setup_class`).
    Object bodies (S3 PutObject/UploadPart) are left out: they say nothing to IAM, and
    neither are headers, which hold the signature."""
    headers = request._headers
    content_type = headers.get("Content-Type") or ""
    body = request._body or b""
    if isinstance(body, str):
        body = body.encode()
    out = {"service": request._service, "region": request._region, "method": request._method}
    split = urlsplit(request._path)
    out["path"] = split.path
    query = parse_qs(split.query, keep_blank_values=True)
    if query:
        out["query"] = _single(query)
    target = headers.get("X-Amz-Target")
    if target:
        out["target"] = target
    try:
        if "x-www-form-urlencoded" in content_type:
            out["params"] = {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in request._data.items()}
        elif "json" in content_type and body:
            out["body"] = json.loads(body)
        elif request._service == "s3" and "delete" in query:
            # DeleteObjects: the keys are in the XML body, and AWS checks each one.
            out["body"] = body.decode()
    except (UnicodeDecodeError, ValueError) as e:
        out["unreadable"] = f"{type(e).__name__}: {e}"
    return out


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
                "request": carried(request),
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
