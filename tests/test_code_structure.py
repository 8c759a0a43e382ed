"""The layering and size rules of docs/architecture.md, measured from the source
(tests/code_structure.py): no layer imports one above it, and no function in tasks/ or flows/
runs over 60 lines without a `# long:` comment above it saying why."""

from tests.code_structure import LAYERS, LONG, functions, layer_imports, layer_of, long_functions, source_files


def test_no_layer_imports_a_layer_above_it():
    counts, upward = layer_imports()
    assert not upward, "upward imports (see docs/architecture.md):\n" + "\n".join(upward)
    assert counts[("flows", "tasks")] and counts[("infra.app", "flows")]  # the measure sees imports at all


def test_layers_are_told_apart_by_their_longest_prefix():
    assert layer_of("infra.core.storage") == "infra.core" and layer_of("infra.app.cli") == "infra.app"
    assert layer_of("tasks.training.loop") == "tasks" and layer_of("torch") is None
    assert layer_of("flowsy") is None and LAYERS[0] == "infra.core"


def test_long_functions_in_tasks_and_flows_say_why():
    long = long_functions()
    assert not long, f"functions over {LONG} lines without a `# long:` reason above them:\n" + "\n".join(
        f"  {f.path}:{f.line} {f.name} ({f.lines} lines)" for f in long
    )


def test_the_size_measure_counts_a_function_from_def_to_its_end(tmp_path):
    path = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    path.write_text(f"# long: a table\ndef big():\n{body}\n\n\ndef small():\n    return 1\n")
    found = {f.name: f for f in functions(path, root=tmp_path)}
    assert found["big"].lines == 71 and found["big"].reason == "# long: a table"
    assert found["small"].lines == 2 and found["small"].reason is None
    assert len(source_files()) > 100
