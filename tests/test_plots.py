from revsent.plots import plot_confusion, plot_history


def test_plots_are_png(tmp_path):
    plot_history([{"epoch": 1, "train_loss": .5, "val_loss": .6, "train_accuracy": .7, "val_accuracy": .6},
                  {"epoch": 2, "train_loss": .4, "val_loss": .5, "train_accuracy": .8, "val_accuracy": .7}],
                 tmp_path / "h.png")
    plot_confusion([[5, 1], [2, 4]], ["neg", "pos"], tmp_path / "c.png")
    for name in ("h.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_plot_draws_the_running_mean_where_there_is_one(tmp_path, monkeypatch):
    import revsent.plots as plots_module

    figures = []
    monkeypatch.setattr(plots_module, "save_figure", lambda fig, path: figures.append(fig))
    rows = [{"epoch": 1, "train_loss": .5, "val_loss": .6, "train_accuracy": .7, "val_accuracy": .6},
            {"epoch": 2, "train_loss": .4, "val_loss": .5, "train_accuracy": .8, "val_accuracy": .7,
             "val_loss_mean": .45, "val_accuracy_mean": .75}]
    plot_history(rows, tmp_path / "h.png")
    plot_history(rows[:1], tmp_path / "one.png")
    loss_axis = figures[0].axes[0]
    mean = [line for line in loss_axis.lines if "mean" in line.get_label()]
    assert len(mean) == 1 and list(mean[0].get_xdata()) == [2] and list(mean[0].get_ydata()) == [.45]
    assert not [line for line in figures[1].axes[0].lines if "mean" in line.get_label()]
