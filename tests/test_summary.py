from src.summary import format_comparison, main


def test_summary_table_shows_shapes_and_total(capsys):
    main(["model=lenet5", "padding=same", "pooling=min"])
    out = capsys.readouterr().out
    assert "features.pool1      MinPool2d  6 x 16 x 16" in out
    assert out.strip().endswith("Total params: 136,586")


def test_summary_alexnet_paper_shapes(capsys):
    main(["model=alexnet", "model.num_classes=1000", "model.groups=2"])
    out = capsys.readouterr().out
    assert "256 x 6 x 6" in out and "Total params: 60,965,224" in out


def test_compare_puts_layers_side_by_side():
    out = format_comparison(["model=lenet5"], "padding=valid,same")
    lines = out.splitlines()
    assert lines[0].split() == ["layer", "padding=valid", "padding=same"]
    conv1 = next(line for line in lines if line.startswith("features.conv1"))
    assert "6 x 28 x 28" in conv1 and "6 x 32 x 32" in conv1
    assert lines[-1].split() == ["Total", "params", "61,706", "136,586"]
