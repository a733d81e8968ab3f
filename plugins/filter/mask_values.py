# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hide the values of secret-carrying settings in a tool's message, so the message itself can be shown."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

DOCUMENTATION = r"""
name: mask_values
short_description: Replace every value of the given settings in a text by a mask
version_added: 0.1.0
description:
  - A task that writes a configuration holding secrets runs with C(no_log), so when the tool that validates the file
    refuses it, the user would see no reason; this filter lets the role show the tool's message with the secrets out.
  - Every string found in O(sources) (at any depth of lists and dicts) is replaced in the text, longest first. For a
    string that is a URL, its password, path segments and query values are replaced too, since a tool may quote a URL
    in part or re-encoded.
  - Values under the keys in O(keep) (default C(name)) stay visible, so the message can still say which receiver it is
    about. Strings shorter than O(min_length) stay visible too, since masking every C(a) would make the message
    unreadable, and no real secret is that short.
options:
  _input:
    description: The text to mask, such as a validation error.
    type: str
    required: true
  sources:
    description: The settings whose values are to be hidden (lists and dicts, walked to their leaves).
    type: list
    elements: raw
    required: true
  keep:
    description: Keys whose values stay visible.
    type: list
    elements: str
    default: [name]
  min_length:
    description: Shortest string that is masked.
    type: int
    default: 3
  mask:
    description: What each hidden value becomes.
    type: str
    default: "********"
"""

EXAMPLES = r"""
- name: Say why amtool refused the configuration, receivers' values hidden
  ansible.builtin.fail:
    msg: "{{ written.msg | fleetwatch.falco_stack.mask_values([alertmanager_receivers, alertmanager_global]) }}"
"""

RETURN = r"""
_value:
  description: The text, each value of O(sources) replaced by O(mask).
  type: str
"""


def _leaves(value, keep):
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key) not in keep:
                yield from _leaves(item, keep)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item, keep)
    elif isinstance(value, str):
        yield value


def _parts_of_url(value):
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc:
        return []
    found = [parts.password or "", parts.username or ""]
    found.extend(segment for segment in parts.path.split("/"))
    found.extend(value for _key, value in parse_qsl(parts.query, keep_blank_values=True))
    return found


def mask_values(text, sources, keep=("name",), min_length=3, mask="********"):
    text = "" if text is None else str(text)
    secrets = set()
    for leaf in _leaves(sources, set(keep or ())):
        secrets.add(leaf)
        secrets.update(_parts_of_url(leaf))
    for secret in sorted((s for s in secrets if len(s) >= min_length), key=len, reverse=True):
        text = text.replace(secret, mask)
    return text


class FilterModule(object):
    def filters(self):
        return {"mask_values": mask_values}
