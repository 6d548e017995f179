"""moto_server for tests/deploy.rs, with the calls moto lacks that the
terraform module needs (harness only: the module knows nothing of moto).

moto 5.2.5 does not implement application-autoscaling's ListTagsForResource,
TagResource and UntagResource: the AWS provider reads a scalable target's
tags after creating it and retries the unknown call until terraform gives up.
Here the tags given at RegisterScalableTarget are kept per target ARN and
answered back. Everything else is stock moto.

    python3 moto_server.py -H 127.0.0.1 -p PORT
"""

import json
import sys

from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.server import main

TAGS: dict[str, dict[str, str]] = {}

_register = ApplicationAutoScalingResponse.register_scalable_target


def register_scalable_target(self):
    answer = _register(self)
    arn = json.loads(answer)["ScalableTargetARN"]
    TAGS.setdefault(arn, {}).update(self._get_param("Tags") or {})
    return answer


def list_tags_for_resource(self):
    return json.dumps({"Tags": TAGS.get(self._get_param("ResourceARN"), {})})


def tag_resource(self):
    TAGS.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags") or {})
    return "{}"


def untag_resource(self):
    tags = TAGS.get(self._get_param("ResourceARN"), {})
    for key in self._get_param("TagKeys") or []:
        tags.pop(key, None)
    return "{}"


ApplicationAutoScalingResponse.register_scalable_target = register_scalable_target
ApplicationAutoScalingResponse.list_tags_for_resource = list_tags_for_resource
ApplicationAutoScalingResponse.tag_resource = tag_resource
ApplicationAutoScalingResponse.untag_resource = untag_resource

if __name__ == "__main__":
    main(sys.argv[1:])
