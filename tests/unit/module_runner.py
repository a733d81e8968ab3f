"""Run one of the collection's modules in this process, as it runs on a host, and return its JSON result."""

import json
from unittest import mock

import pytest

from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.testing import patch_module_args


def run_module_main(main, args, capsys):
    """Call a module's main() with args as its ANSIBLE_MODULE_ARGS; the result it printed, parsed."""
    # Modules run on the hosts; once a test in this process has imported controller code (a filter plugin's
    # AnsibleFilterError), ansible-core would send module warnings to the controller's display instead.
    with patch_module_args(args), mock.patch.object(module_utils_internal, "is_controller", False):
        with pytest.raises(SystemExit):
            main()
    return json.loads(capsys.readouterr().out)
