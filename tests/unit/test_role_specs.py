"""scripts/role_specs.py, the lint stage's check that every role's defaults and argument specs agree, on fixture
roles written here: each kind of disagreement is reported with the role and the variable, and agreeing roles pass.
(The lint stage runs it on the collection's own roles.)"""

import importlib.util
import textwrap

import pytest

from localplay import REPO

_spec = importlib.util.spec_from_file_location("role_specs", REPO / "scripts" / "role_specs.py")
role_specs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_specs)

AGREEING_SPEC = """\
argument_specs:
  main:
    short_description: A fixture role
    options:
      fixture_port: {type: int, default: 9100, description: A port.}
      fixture_mode: {type: str, choices: [package, container], default: package, description: A mode.}
      fixture_groups: {type: list, elements: str, default: [monitoring], description: Groups.}
      fixture_password: {type: str, required: true, no_log: true, description: Required, so no default.}
      fixture_url:
        type: str
        description: A template written on one line.
        default: "{{ ('https' if fixture_tls | bool else 'http') ~ '://' ~ inventory_hostname ~ ':3000' }}"
  uninstall:
    short_description: Remove it
    options:
      fixture_mode: {type: str, choices: [package, container], default: package, description: A mode.}
"""
AGREEING_DEFAULTS = """\
fixture_port: 9100
fixture_mode: package
fixture_groups: [monitoring]
# The same template as the spec's, folded over two lines.
fixture_url: >-
  {{ ('https' if fixture_tls | bool else 'http') ~ '://'
     ~ inventory_hostname ~ ':3000' }}
"""


def write_role(tmp_path, defaults=AGREEING_DEFAULTS, spec=AGREEING_SPEC, name="fixture"):
    role = tmp_path / name
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text("---\n" + textwrap.dedent(defaults))
    (role / "meta" / "argument_specs.yml").write_text("---\n" + textwrap.dedent(spec))
    return role


def test_a_role_whose_defaults_and_specs_agree_passes(tmp_path, capsys):
    role = write_role(tmp_path)
    assert role_specs.role_problems(role) == []
    assert role_specs.main([str(role)]) == 0
    assert "agree in 1 roles" in capsys.readouterr().out


@pytest.mark.parametrize("defaults,spec,words", [
    # A variable in defaults/main.yml the spec does not declare.
    (AGREEING_DEFAULTS + "fixture_extra: 1\n", AGREEING_SPEC, ["fixture_extra", "not in meta/argument_specs.yml"]),
    # A declared option without a value in defaults/main.yml and not required.
    (AGREEING_DEFAULTS.replace("fixture_port: 9100\n", ""), AGREEING_SPEC, ["fixture_port", "no value in defaults"]),
    # Literal defaults that differ, including by type only.
    (AGREEING_DEFAULTS.replace("9100", "9101"), AGREEING_SPEC, ["fixture_port", "9100", "9101"]),
    (AGREEING_DEFAULTS.replace("9100", '"9100"'), AGREEING_SPEC, ["fixture_port", "make them the same"]),
    (AGREEING_DEFAULTS.replace("[monitoring]", "[monitoring, other]"), AGREEING_SPEC, ["fixture_groups"]),
    # Templates that differ in more than whitespace: an operator, a string literal.
    (AGREEING_DEFAULTS.replace("fixture_tls | bool", "fixture_tls"), AGREEING_SPEC, ["fixture_url"]),
    (AGREEING_DEFAULTS.replace("':3000'", "':3001'"), AGREEING_SPEC, ["fixture_url"]),
    # The spec's default: missing, a type the default does not have, elements, choices.
    (AGREEING_DEFAULTS, AGREEING_SPEC.replace("type: int, default: 9100,", "type: int,"),
     ["fixture_port", "no default: in the spec"]),
    (AGREEING_DEFAULTS.replace("9100", "true"), AGREEING_SPEC.replace("default: 9100", "default: true"),
     ["fixture_port", "type: int", "bool"]),
    (AGREEING_DEFAULTS.replace("[monitoring]", "[1]"), AGREEING_SPEC.replace("[monitoring]", "[1]"),
     ["fixture_groups", "elements: str"]),
    (AGREEING_DEFAULTS.replace("mode: package", "mode: packages"),
     AGREEING_SPEC.replace("default: package", "default: packages"), ["fixture_mode", "packages", "not one of its choices"]),
])
def test_each_disagreement_is_reported_with_the_variable(tmp_path, capsys, defaults, spec, words):
    role = write_role(tmp_path, defaults, spec)
    problems = role_specs.role_problems(role)
    assert any(all(word in problem for word in words) for problem in problems), problems
    assert all(problem.startswith("roles/fixture") for problem in problems), problems
    assert role_specs.main([str(role)]) == 1
    assert "problem(s)" in capsys.readouterr().out


def test_an_entry_point_other_than_main_is_compared_too(tmp_path):
    spec = AGREEING_SPEC.rsplit("fixture_mode", 1)[0] + \
        "fixture_mode: {type: str, choices: [package, container], default: container, description: A mode.}\n"
    problems = role_specs.role_problems(write_role(tmp_path, spec=spec))
    assert problems == ["roles/fixture (entry point uninstall): fixture_mode defaults to 'container' in the spec but "
                        "'package' in defaults/main.yml: make them the same"]


def test_a_required_variable_with_a_value_in_defaults_is_reported(tmp_path):
    problems = role_specs.role_problems(write_role(tmp_path, AGREEING_DEFAULTS + "fixture_password: secret\n"))
    assert any("fixture_password is required: true" in problem for problem in problems), problems


def test_a_role_without_argument_specs_is_reported(tmp_path):
    role = write_role(tmp_path)
    (role / "meta" / "argument_specs.yml").unlink()
    assert role_specs.role_problems(role) == [
        "roles/fixture: no meta/argument_specs.yml: declare every variable of defaults/main.yml there"]


def test_every_role_of_the_collection_is_checked_by_default(monkeypatch, capsys):
    checked = []
    monkeypatch.setattr(role_specs, "role_problems", lambda role_dir: checked.append(role_dir.name) or [])
    assert role_specs.main([]) == 0
    assert sorted(checked) == sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert "_common" in checked and "prometheus" in checked


INCLUDE_VARIABLES_SPEC = """\
argument_specs:
  main:
    short_description: Internal
    options: {}
  packages:
    short_description: A task file other roles include
    options:
      __fixture_packages: {type: list, elements: dict, required: true, description: Passed by the caller.}
      __fixture_os_family: {type: str, description: Optional, no default anywhere.}
      __fixture_recommends: {type: bool, default: %s, description: Its own default.}
"""


def test_include_variables_need_no_defaults_but_their_own_default_is_checked(tmp_path):
    good = write_role(tmp_path / "good", defaults="", spec=INCLUDE_VARIABLES_SPEC % "false")
    assert role_specs.role_problems(good) == []
    bad = write_role(tmp_path / "bad", defaults="", spec=INCLUDE_VARIABLES_SPEC % "'no'")
    problems = role_specs.role_problems(bad)
    assert len(problems) == 1 and "__fixture_recommends" in problems[0] and "bool" in problems[0], problems


INTERNAL_SPEC = """\
argument_specs:
  main:
    short_description: Refuses direct use
    options: {}
  firewall:
    short_description: A task file callers include
    options:
      fixture_shared_enabled: {type: bool, default: false, description: Read by that task file.}
"""


def test_an_internal_role_declares_its_defaults_in_the_entry_point_that_reads_them(tmp_path):
    internal = write_role(tmp_path, defaults="fixture_shared_enabled: false\n", spec=INTERNAL_SPEC, name="_fixture")
    assert role_specs.role_problems(internal) == []
    # The same files in a role callers use directly: its defaults belong to main.
    public = write_role(tmp_path, defaults="fixture_shared_enabled: false\n", spec=INTERNAL_SPEC, name="fixture")
    problems = role_specs.role_problems(public)
    assert len(problems) == 1 and "fixture_shared_enabled" in problems[0] and "(main)" in problems[0], problems
    # Declared nowhere: reported for the internal role too.
    bare = write_role(tmp_path / "bare", defaults="fixture_shared_enabled: false\nfixture_other: 1\n",
                      spec=INTERNAL_SPEC, name="_fixture")
    problems = role_specs.role_problems(bare)
    assert len(problems) == 1 and "fixture_other" in problems[0] and "an entry point" in problems[0], problems
