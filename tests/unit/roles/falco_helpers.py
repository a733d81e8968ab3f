"""Helpers for the falco role's unit tests: run the role's test plays on localhost (through tests/unit/localplay.py)
and merge configs like Falco does."""

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
UPSTREAM = REPO.parent / "shared" / "upstream" / "falco"
UPSTREAM_REASON = "upstream Falco reference files not found at %s (see ../shared/upstream/FACTS.md)" % UPSTREAM

sys.path.insert(0, str(HERE.parent))
from localplay import ansible_playbook, failures  # noqa: E402  (tests/unit is not on sys.path when only this folder runs)


def collections_dir(tmp_path_factory):
    """A working directory for localplay.ansible_playbook (which links this checkout in as the collection)."""
    return tmp_path_factory.mktemp("falco-localplay")


def run_playbook(playbook, workdir, extra_vars, *args):
    """Run one of this folder's test plays against localhost; return (exit code, output).

    Extra ``args`` go to ansible-playbook after the JSON extra vars, so ``"-e", "key=value"`` there override them
    the way a user's command line would (as strings).
    """
    play = load_yaml(HERE / playbook)
    rc, output, _recap = ansible_playbook(workdir, play, extra_vars, *args)
    return rc, output


def run_failures(playbook, workdir, extra_vars, *args):
    """Run one of this folder's test plays with the JSON callback; return (exit code, [{task, msg}] of the failures)."""
    return failures(workdir, load_yaml(HERE / playbook), extra_vars, *args)


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def merge(base, dropin):
    """Falco's drop-in merge (FACTS.md section 8): top-level maps replaced whole, lists appended."""
    result = dict(base)
    for key, value in (dropin or {}).items():
        if isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = result[key] + value
        else:
            result[key] = value
    return result


def effective_config(main_file, dropin_files):
    """falco.yaml plus its drop-ins in load order (the files of config.d sorted by name)."""
    config = load_yaml(main_file)
    for path in sorted(dropin_files, key=lambda p: Path(p).name):
        config = merge(config, load_yaml(path))
    return config
