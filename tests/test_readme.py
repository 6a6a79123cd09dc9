"""README.md: its two commands stay true, and its Python example runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def fenced(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_first_two_blocks_install_and_train_then_test():
    demo, tests = fenced("bash")[:2]
    assert README.index(demo) < README.index(tests)
    assert "pip install" in demo and "minidl train --model min-small --dataset digits" in demo
    assert tests.strip().endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    tests = fenced("bash")[1].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_python_example_runs():
    namespace = {}
    exec(compile(fenced("python")[0], "README.md", "exec"), namespace)
    assert namespace["w"].grad.shape == (16, 1, 5, 5)
    assert namespace["y"].shape == (8, 8, 28, 28)
