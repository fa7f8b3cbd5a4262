"""Test support for tests/e2e/aws_iam.rs (not shipped): IAM evaluated as AWS does.

moto holds callers to their policies but evaluates no condition, so a policy that AWS
would refuse on a condition (a tag, `ec2:CreateAction`, `iam:PassedToService`,
`s3:prefix`...) passes on moto. This script takes the calls the head and worker roles
made on moto (the decision log of `moto_iam.py serve`, which records each request's
parameters), rebuilds for each the request context(s) AWS authorizes it under, and
evaluates every context against the role's deployed policy document with an
independent IAM evaluator that honours conditions: principalmapper's local policy
simulation (PyPI `principalmapper-0ca`). Nothing here decides whether a statement
matches; this file only says what AWS is asked.

  evaluate --log FILE --from N --to M --policies FILE --cluster NAME
           --store s3://BUCKET/PREFIX/ --datasets BUCKET

    --log        the decision log (one JSON object a line); lines N..M (0-based, end
                 excluded) are evaluated, those of assumed roles only
    --policies   {"role name": policy document} as the IAM stack deployed them
    --store, --datasets, --cluster: what the denied probes are made of

  Existing resources' tags (launch templates, subnets, security groups, instances), the
  launch templates' data, images, instance profiles and stacks are read from moto as
  the admin (ADMIN_KEY / ADMIN_SECRET, AWS_ENDPOINT_URL, AWS_REGION).

  Prints the table of contexts to stderr and, on stdout, one JSON object:
  {"contexts": [{role, action, resource, keys, decision, call, modelled}],
   "probes": [{role, action, resource, keys, decision, why}]}.
  `decision` is "allow", "deny" (explicit Deny) or "implicit deny".

Where each request context comes from (AWS Service Authorization Reference, "Actions,
resources, and condition keys for Amazon EC2" and the EC2 user guide):
- RunInstances / CreateFleet are authorized on every resource they use or create: the
  launch template, the image and its snapshots (`ec2:Owner`), each subnet and security
  group (`aws:ResourceTag/*`), and each resource type they create (`instance/*`,
  `volume/*`, `network-interface/*`, `fleet/*` for CreateFleet, `spot-instances-request/*`
  for spot) with `aws:RequestTag/*` and `aws:TagKeys` of the tags it gets at launch.
- Tags given at launch are authorized again as `ec2:CreateTags` on each created type,
  with `ec2:CreateAction` set to the bare API name (`RunInstances`, `CreateFleet`: the EC2
  user guide, "Grant permission to tag Amazon EC2 resources during creation"). Tags from
  the launch template are authorized so too: when Karpenter v0.33 added spot request tags
  to its launch templates, CreateFleet failed with "not authorized to perform:
  ec2:CreateTags on resource: ...:spot-instances-request/*" (aws/karpenter-provider-aws#5270).
- CreateFleet is also asked as ec2:RunInstances on the same resources (but the fleet).
- The tags a created resource gets are the request's TagSpecifications for its type,
  merged over the launch template's (the request wins on a key). That the launch
  template's count as request tags rests on practice, not a sentence of AWS's: Karpenter
  tags network interfaces only in its launch templates, its CreateFleet cannot tag them,
  and its published controller policy requires `aws:RequestTag` on `network-interface/*`
  for CreateFleet (aws/karpenter-provider-aws: pkg/providers/launchtemplate/types.go,
  website/.../cloudformation.yaml).
- The launch template's instance profile passes its role: `iam:PassRole` on the role,
  `iam:PassedToService` = ec2.amazonaws.com.
- Every context carries `aws:RequestedRegion` (the signing region), `ec2:Region` for EC2,
  `aws:PrincipalArn` and `aws:PrincipalAccount`.
"""

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

# principalmapper-0ca still imports Mapping/MutableMapping from `collections`, which
# Python 3.10 removed; they live in collections.abc.
import collections
import collections.abc

collections.Mapping = collections.abc.Mapping
collections.MutableMapping = collections.abc.MutableMapping

from principalmapper.querying.local_policy_simulation import policy_has_matching_statement  # noqa: E402
from principalmapper.util.case_insensitive_dict import CaseInsensitiveDict  # noqa: E402

from moto_iam import client  # noqa: E402  (same directory: the admin's boto3 clients)

EC2_SERVICE = "ec2.amazonaws.com"
# AWS authorizes these with the single action ("You cannot set permissions explicitly
# for SendMessageBatch, DeleteMessageBatch, or ChangeMessageVisibilityBatch").
SQS_BATCH = {"sqs:SendMessageBatch": "sqs:SendMessage", "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
             "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility"}
# EC2 actions without resource-level permissions: `*` is their only resource.
EC2_DESCRIBE = re.compile(r"^ec2:Describe")
SERVICE_LINKED_ROLES = {"spot.amazonaws.com": "AWSServiceRoleForEC2Spot"}


class Context:
    def __init__(self, role, action, resource, keys, call, modelled=True, why=None):
        self.role, self.action, self.resource, self.keys = role, action, resource, keys
        self.call, self.modelled, self.why = call, modelled, why
        self.decision = None

    def as_json(self):
        out = {"role": self.role, "action": self.action, "resource": self.resource, "keys": self.keys,
               "decision": self.decision, "call": self.call, "modelled": self.modelled}
        if self.why:
            out["why"] = self.why
        return out


def members(params, prefix):
    """The members of a query-protocol list: `Prefix.1.X`, `Prefix.1.Y`, `Prefix.2.X` →
    [{"X":..., "Y":...}, {"X":...}]; a list of scalars (`Prefix.1`) → its values."""
    found = {}
    for k, v in params.items():
        m = re.match(re.escape(prefix) + r"\.(\d+)(?:\.(.*))?$", k)
        if m:
            n, rest = int(m.group(1)), m.group(2)
            if rest is None:
                found[n] = v
            else:
                found.setdefault(n, {})[rest] = v
    return [found[n] for n in sorted(found)]


def tag_specs(params, prefix="TagSpecification"):
    """{resource type: {key: value}} of a request's TagSpecification list."""
    out = {}
    for spec in members(params, prefix):
        tags = {t.get("Key"): t.get("Value", "") for t in members(spec, "Tag")}
        out.setdefault(spec.get("ResourceType"), {}).update(tags)
    return out


def tag_keys(tags, prefix):
    """Condition keys of a tag set: `aws:RequestTag/K` or `aws:ResourceTag/K`, plus
    `aws:TagKeys` for request tags."""
    keys = {f"{prefix}/{k}": v for k, v in tags.items()}
    if prefix == "aws:RequestTag" and tags:
        keys["aws:TagKeys"] = sorted(tags)
    return keys


class Account:
    """What the account holds, read as the admin; cached (the calls repeat)."""

    def __init__(self, region):
        self.region = region
        self.ec2 = client("ec2")
        self.iam = client("iam")
        self.cfn = client("cloudformation")
        self.account = client("sts").get_caller_identity()["Account"]
        self.cache = {}

    def _cached(self, key, fetch):
        if key not in self.cache:
            self.cache[key] = fetch()
        return self.cache[key]

    def arn(self, resource, account=True):
        return f"arn:aws:ec2:{self.region}:{self.account if account else ''}:{resource}"

    @staticmethod
    def _tags(items):
        return {t["Key"]: t["Value"] for t in items or []}

    def launch_template_tags(self, lt_id):
        return self._cached(("lt", lt_id), lambda: self._tags(
            self.ec2.describe_launch_templates(LaunchTemplateIds=[lt_id])["LaunchTemplates"][0].get("Tags")))

    def launch_template_data(self, lt_id, version):
        def fetch():
            versions = [version] if version else ["$Default"]
            got = self.ec2.describe_launch_template_versions(LaunchTemplateId=lt_id, Versions=versions)
            return got["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        return self._cached(("ltv", lt_id, version), fetch)

    def subnet_tags(self, subnet_id):
        return self._cached(("subnet", subnet_id), lambda: self._tags(
            self.ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0].get("Tags")))

    def group_tags(self, group_id):
        return self._cached(("sg", group_id), lambda: self._tags(
            self.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0].get("Tags")))

    def instance_tags(self, instance_id):
        def fetch():
            r = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            return self._tags(r[0]["Instances"][0].get("Tags"))
        return self._cached(("instance", instance_id), fetch)

    def image(self, image_id):
        def fetch():
            image = self.ec2.describe_images(ImageIds=[image_id])["Images"][0]
            # ec2:Owner is `amazon` for Amazon's images, else the owner's account id.
            owner = image.get("ImageOwnerAlias") or image["OwnerId"]
            snapshots = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
                         if m.get("Ebs", {}).get("SnapshotId")]
            return owner, snapshots
        return self._cached(("image", image_id), fetch)

    def profile_roles(self, profile_name):
        return self._cached(("profile", profile_name), lambda: [
            r["Arn"] for r in self.iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"]])

    def stack_arn(self, name):
        if name.startswith("arn:"):
            return name
        return self._cached(("stack", name), lambda: self.cfn.describe_stacks(StackName=name)["Stacks"][0]["StackId"])


def launch_contexts(api, params, account, spec):
    """RunInstances / CreateFleet: [(action, resource, keys)], as described at the top."""
    if api == "RunInstances":
        templates = [(params.get("LaunchTemplate.LaunchTemplateId"), params.get("LaunchTemplate.Version"))]
        subnets = [params.get("NetworkInterface.1.SubnetId") or params.get("SubnetId")]
        groups = members(params, "NetworkInterface.1.SecurityGroupId") + members(params, "SecurityGroupId")
        spot = params.get("InstanceMarketOptions.MarketType") == "spot"
        creates = ["instance", "volume", "network-interface"]
    else:
        configs = members(params, "LaunchTemplateConfigs")
        templates = [(c.get("LaunchTemplateSpecification.LaunchTemplateId"), c.get("LaunchTemplateSpecification.Version"))
                     for c in configs]
        subnets = [o.get("SubnetId") for c in configs for o in members(c, "Overrides")]
        groups = []
        spot = params.get("TargetCapacitySpecification.DefaultTargetCapacityType") == "spot"
        creates = ["instance", "volume", "network-interface", "fleet"]
    if spot:
        creates.append("spot-instances-request")
    requested = tag_specs(params)
    out = []
    template_tags = {}
    for lt_id, version in templates:
        out.append((f"ec2:{api}", account.arn(f"launch-template/{lt_id}"),
                    tag_keys(account.launch_template_tags(lt_id), "aws:ResourceTag")))
        data = account.launch_template_data(lt_id, version)
        for s in data.get("TagSpecifications", []):
            template_tags.setdefault(s["ResourceType"], {}).update(account._tags(s.get("Tags")))
        for nic in data.get("NetworkInterfaces", []):
            groups += nic.get("Groups", [])
        groups += data.get("SecurityGroupIds", [])
        if data.get("ImageId"):
            owner, snapshots = account.image(data["ImageId"])
            out.append((f"ec2:{api}", f"arn:aws:ec2:{account.region}::image/{data['ImageId']}", {"ec2:Owner": owner}))
            for snap in snapshots:
                out.append((f"ec2:{api}", f"arn:aws:ec2:{account.region}::snapshot/{snap}", {"ec2:Owner": owner}))
        profile = (data.get("IamInstanceProfile") or {}).get("Name")
        arn = (data.get("IamInstanceProfile") or {}).get("Arn")
        if profile or arn:
            for role in account.profile_roles(profile or arn.rsplit("/", 1)[-1]):
                out.append(("iam:PassRole", role, {"iam:PassedToService": EC2_SERVICE}))
    for subnet in filter(None, subnets):
        out.append((f"ec2:{api}", account.arn(f"subnet/{subnet}"), tag_keys(account.subnet_tags(subnet), "aws:ResourceTag")))
    for group in dict.fromkeys(groups):
        out.append((f"ec2:{api}", account.arn(f"security-group/{group}"), tag_keys(account.group_tags(group), "aws:ResourceTag")))
    for kind in creates:
        tags = {**template_tags.get(kind, {}), **requested.get(kind, {})}
        out.append((f"ec2:{api}", account.arn(f"{kind}/*"), tag_keys(tags, "aws:RequestTag")))
        if tags:
            keys = tag_keys(tags, "aws:RequestTag")
            keys["ec2:CreateAction"] = api
            out.append(("ec2:CreateTags", account.arn(f"{kind}/*"), keys))
    if api == "CreateFleet":
        # An instant fleet launches as the caller: AWS also asks ec2:RunInstances on what
        # it uses and creates (a decoded CreateFleet denial shows action RunInstances on
        # spot-instances-request/*: kubernetes-sigs/karpenter#1713). Modelled as a
        # superset: the fleet itself is CreateFleet's only.
        out += [("ec2:RunInstances", r, k) for a, r, k in list(out)
                if a == "ec2:CreateFleet" and not r.endswith(":fleet/*")]
    return out


def s3_contexts(action, resource, request):
    query = request.get("query", {})
    if action == "s3:ListBucket":
        keys = {"s3:prefix": query["prefix"]} if "prefix" in query else {}
        return [(action, resource, keys)]
    if action == "s3:DeleteObject" and "delete" in query:
        # DeleteObjects: moto checks the bucket; AWS checks s3:DeleteObject on each key.
        root = ET.fromstring(request["body"])
        keys = [k.text for k in root.iter() if k.tag.endswith("Key")]
        return [(action, f"{resource.split('/')[0]}/{k}", {}) for k in keys]
    return [(action, resource, {})]


def contexts_of(entry, account, spec):
    """[(action, resource, keys)] AWS authorizes one logged call under, and whether this
    file models the call (an unmodelled one fails the test rather than pass unseen)."""
    action, request = entry["action"], entry.get("request", {})
    params = request.get("params", {})
    body = request.get("body") if isinstance(request.get("body"), dict) else {}
    service = action.split(":")[0]
    if action == "sts:GetCallerIdentity":
        return [], True  # "No permissions are required to perform this operation."
    if action in ("ec2:RunInstances", "ec2:CreateFleet"):
        return launch_contexts(action.split(":")[1], params, account, spec), True
    if action == "ec2:TerminateInstances":
        return [(action, account.arn(f"instance/{i}"), tag_keys(account.instance_tags(i), "aws:ResourceTag"))
                for i in members(params, "InstanceId")], True
    if action == "ec2:CreateTags":
        tags = {t.get("Key"): t.get("Value", "") for t in members(params, "Tag")}
        out = []
        for r in members(params, "ResourceId"):
            kind = "instance" if r.startswith("i-") else "unknown"
            keys = tag_keys(tags, "aws:RequestTag")
            if kind == "instance":
                keys.update(tag_keys(account.instance_tags(r), "aws:ResourceTag"))
            out.append((action, account.arn(f"{kind}/{r}"), keys))
        return out, True
    if EC2_DESCRIBE.match(action):
        return [(action, "*", {})], True
    if action == "iam:CreateServiceLinkedRole":
        service_name = params.get("AWSServiceName", "")
        role = SERVICE_LINKED_ROLES.get(service_name, "?")
        arn = f"arn:aws:iam::{account.account}:role/aws-service-role/{service_name}/{role}"
        return [(action, arn, {"iam:AWSServiceName": service_name})], True
    if action == "cloudformation:DescribeStacks":
        return [(action, account.stack_arn(params.get("StackName", "")), {})], True
    if action in ("ssm:GetParameter", "ssm:GetParameters"):
        names = body.get("Names") or [body.get("Name")]
        # Public parameters (/aws/service/...) belong to no account.
        return [(action, f"arn:aws:ssm:{account.region}:{'' if n.startswith('/aws/') else account.account}:parameter{n}", {})
                for n in names], True
    if service == "sqs":
        resource = entry.get("resource") or "*"
        if not resource.startswith("arn:"):
            name = body.get("QueueName") or (body.get("QueueUrl") or "").rstrip("/").rsplit("/", 1)[-1]
            resource = f"arn:aws:sqs:{account.region}:{account.account}:{name}"
        return [(SQS_BATCH.get(action, action), resource, {})], True
    if service == "s3" and (entry.get("resource") or "").startswith("arn:aws:s3:::"):
        return s3_contexts(action, entry["resource"], request), True
    return [(action, entry.get("resource") or "*", {})], False


def decide(document, action, resource, keys):
    context = CaseInsensitiveDict(keys)
    if policy_has_matching_statement(document, "Deny", action, resource, context):
        return "deny"
    if policy_has_matching_statement(document, "Allow", action, resource, context):
        return "allow"
    return "implicit deny"


def base_keys(entry, account):
    request = entry.get("request", {})
    region = request.get("region", account.region)
    keys = {"aws:RequestedRegion": region, "aws:PrincipalArn": entry["role_arn"],
            "aws:PrincipalAccount": account.account}
    if entry["action"].startswith("ec2:"):
        keys["ec2:Region"] = region
    return keys


def role_of(principal):
    m = re.match(r"arn:aws:sts::(\d+):assumed-role/([^/]+)/", principal)
    return (m.group(2), f"arn:aws:iam::{m.group(1)}:role/{m.group(2)}") if m else (None, None)


def probes(args, account, policies):
    """Calls outside each role, as AWS would be asked them: each must be denied."""
    cluster, region, acct = args.cluster, account.region, account.account
    head, worker = f"fleetform-{cluster}-head", f"fleetform-{cluster}-worker"
    bucket, prefix = args.store[len("s3://"):].split("/", 1)
    ours = {"aws:RequestTag/fleetform:cluster": cluster}
    ec2 = lambda r: f"arn:aws:ec2:{region}:{acct}:{r}"
    base = lambda role: {"aws:RequestedRegion": region, "ec2:Region": region,
                         "aws:PrincipalArn": f"arn:aws:iam::{acct}:role/{role}", "aws:PrincipalAccount": acct}
    listed = [
        (head, "ec2:TerminateInstances", ec2("instance/i-0another"), {"aws:ResourceTag/fleetform:cluster": "another"},
         "terminate an instance of another cluster"),
        (head, "ec2:TerminateInstances", ec2("instance/i-0untagged"), {}, "terminate an instance without the cluster tag"),
        (head, "ec2:CreateTags", ec2("instance/i-0existing"), {**ours, "aws:ResourceTag/fleetform:cluster": cluster},
         "tag an existing instance (CreateTags outside a launch: no ec2:CreateAction)"),
        (head, "ec2:CreateTags", ec2("instance/*"), {**ours, "ec2:CreateAction": "CreateTags"},
         "CreateTags with ec2:CreateAction=CreateTags"),
        (head, "ec2:CreateTags", ec2("instance/*"), {**ours, "ec2:CreateAction": "CreateVolume"},
         "tag on creation of something fleetform never creates (CreateVolume)"),
        (head, "ec2:RunInstances", ec2("instance/*"), {}, "RunInstances without the cluster RequestTag"),
        (head, "ec2:RunInstances", ec2("instance/*"), {"aws:RequestTag/fleetform:cluster": "another"},
         "RunInstances tagged for another cluster"),
        (head, "ec2:CreateFleet", ec2("volume/*"), {}, "CreateFleet creating an untagged volume"),
        (head, "ec2:CreateFleet", ec2("launch-template/lt-0another"), {"aws:ResourceTag/fleetform:cluster": "another"},
         "launch from another cluster's launch template"),
        (head, "ec2:RunInstances", ec2("subnet/subnet-0another"), {}, "launch into a subnet that is not the cluster's"),
        (head, "ec2:RunInstances", f"arn:aws:ec2:{region}::image/ami-0notours", {"ec2:Owner": "999999999999"},
         "launch an image the spec does not name"),
        (head, "ec2:RunInstances", f"arn:aws:ec2:{region}::snapshot/snap-0foreign", {"ec2:Owner": "999999999999"},
         "a snapshot of a third party's image"),
        (head, "iam:PassRole", f"arn:aws:iam::{acct}:role/{head}", {"iam:PassedToService": EC2_SERVICE},
         "pass the head role"),
        (head, "iam:PassRole", f"arn:aws:iam::{acct}:role/{worker}", {"iam:PassedToService": "lambda.amazonaws.com"},
         "pass the worker role to another service"),
        (head, "ec2:DescribeInstances", "*", {"aws:RequestedRegion": "us-east-1", "ec2:Region": "us-east-1"},
         "describe another region"),
        (head, "iam:CreateServiceLinkedRole",
         f"arn:aws:iam::{acct}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
         {"iam:AWSServiceName": "autoscaling.amazonaws.com"}, "create another service-linked role"),
        (head, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": "another/"}, "list outside the store prefix"),
        (head, "s3:GetObject", f"arn:aws:s3:::{args.datasets}/raw/t.csv", {}, "the head reads job data"),
        (worker, "s3:GetObject", f"arn:aws:s3:::{args.datasets}/private/t.csv", {}, "read outside job_inputs"),
        (worker, "s3:PutObject", f"arn:aws:s3:::{args.datasets}/raw/x.csv", {}, "write into a job input"),
        (worker, "s3:ListBucket", f"arn:aws:s3:::{args.datasets}", {"s3:prefix": "private/"}, "list outside job data"),
        (worker, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {}, "list the store without a prefix"),
        (worker, "ec2:RunInstances", ec2("instance/*"), ours, "a worker launches"),
        (worker, "sqs:DeleteQueue", f"arn:aws:sqs:{region}:{acct}:fleetform-{cluster}-intel", {}, "delete a queue"),
    ]
    out = []
    for role, action, resource, keys, why in listed:
        c = Context(role, action, resource, {**base(role), **keys}, call="probe", why=why)
        c.decision = decide(policies[role], action, resource, c.keys)
        out.append(c)
    return out


def short(resource):
    """S3 keys cut to their first two directories, so that a table row stands for many."""
    if resource.startswith("arn:aws:s3:::"):
        return "arn:aws:s3:::" + "/".join(resource[len("arn:aws:s3:::"):].split("/")[:3])
    return resource


def table(contexts, title):
    rows = collections.Counter()
    for c in contexts:
        shown = {k: v for k, v in c.keys.items() if k not in ("aws:PrincipalArn", "aws:PrincipalAccount", "ec2:Region")
                 and not (k == "aws:RequestedRegion" and v == "us-west-2")}
        keys = " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in sorted(shown.items()))
        rows[(c.role, c.action, short(c.resource), keys, c.decision + ("" if c.modelled else " (unmodelled)"),
              c.why or "")] += 1
    lines = [title, f"{'role':<21} {'action':<30} {'decision':<14} {'n':>3}  resource  [condition keys]"]
    for (role, action, resource, keys, decision, why), n in sorted(rows.items()):
        lines.append(f"{role:<21} {action:<30} {decision:<14} {n:>3}  {resource}  [{keys}]" + (f"  ({why})" if why else ""))
    return "\n".join(lines)


def evaluate(args):
    with open(args.policies) as f:
        policies = json.load(f)
    with open(args.log) as f:
        entries = [json.loads(line) for line in f.read().splitlines()[args.start:args.end]]
    contexts = []
    account = None
    for entry in entries:
        role, role_arn = role_of(entry["principal"])
        if role is None:
            continue
        entry["role_arn"] = role_arn
        if account is None:
            account = Account(os.environ["AWS_REGION"])
        made, modelled = contexts_of(entry, account, args)
        for action, resource, keys in made:
            c = Context(role, action, resource, {**base_keys(entry, account), **keys}, call=entry["action"],
                        modelled=modelled)
            c.decision = decide(policies[role], action, resource, c.keys)
            contexts.append(c)
    if account is None:
        sys.exit("iam_eval.py: no call of an assumed role in the given lines")
    outside = probes(args, account, policies)
    print(table(contexts, "Request contexts of every call the roles made, evaluated as AWS would (principalmapper):"),
          file=sys.stderr)
    print(table(outside, "\nCalls outside the roles (probes), evaluated the same way:"), file=sys.stderr)
    json.dump({"contexts": [c.as_json() for c in contexts], "probes": [c.as_json() for c in outside]}, sys.stdout)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="iam_eval.py")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--log", required=True)
    e.add_argument("--from", dest="start", type=int, required=True)
    e.add_argument("--to", dest="end", type=int, required=True)
    e.add_argument("--policies", required=True)
    e.add_argument("--cluster", required=True)
    e.add_argument("--store", required=True)
    e.add_argument("--datasets", required=True)
    evaluate(p.parse_args())
