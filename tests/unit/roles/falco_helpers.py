"""Helpers for the falco role's unit tests: run the role's tasks on localhost and merge configs like Falco does."""

import json
import os
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
UPSTREAM = REPO.parent / "shared" / "upstream" / "falco"
UPSTREAM_REASON = "upstream Falco reference files not found at %s (see /work/shared/upstream/FACTS.md)" % UPSTREAM


def collections_dir(tmp_path_factory):
    """A collection tree pointing at this checkout, so the role runs by FQCN from the live source."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "fleetwatch").mkdir(parents=True)
    (root / "ansible_collections" / "fleetwatch" / "falco_stack").symlink_to(REPO)
    return root


def run_playbook(playbook, collections, extra_vars, *args):
    """Run a test playbook against localhost; return (exit code, output)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    cmd = ["ansible-playbook", "-i", "localhost,", str(HERE / playbook), "-e", json.dumps(extra_vars), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


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
