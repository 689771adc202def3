namespace Dnm.Node.Tests;

/// <summary>Every way a command line can be wrong ends in exactly one `error:` line and a documented exit code.</summary>
public sealed class CommandLineErrorsSpec
{
    private static void AssertOneErrorLine(CliResult result, int exitCode, string mentions)
    {
        Assert.Equal(exitCode, result.ExitCode);
        var line = Assert.Single(result.ErrorLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains(mentions, line);
    }

    [Fact]
    public void Should_reject_a_map_that_is_not_RxC_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--map", "20y30"), 2, "20y30");

    [Fact]
    public void Should_reject_an_unknown_device_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--device", "gpu"), 2, "gpu");

    [Fact]
    public void Should_reduce_an_unknown_option_to_one_error_line_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--no-such-flag", "3"), 2, "--no-such-flag");

    [Fact]
    public void Should_reduce_an_unparsable_number_to_one_error_line_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--epochs", "ten"), 2, "ten");

    [Fact]
    public void Should_reject_a_value_outside_the_allowed_set_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--som-rule", "online"), 2, "online");

    [Fact]
    public void Should_ask_for_a_command_when_none_is_given() =>
        AssertOneErrorLine(Cli.Run(), 2, "command");

    [Fact]
    public void Should_require_a_checkpoint_for_eval() =>
        AssertOneErrorLine(Cli.Run("eval", "--dataset", "mnist"), 2, "--checkpoint");

    [Fact]
    public void Should_reject_bad_channels_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--channels", "10,x,5"), 2, "10,x,5");

    [Fact]
    public void Should_reject_bad_hidden_widths_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--encoder", "mlp", "--hidden", "500,-1"), 2, "hidden '500,-1'");

    [Fact]
    public void Should_reject_resume_without_path_or_out_with_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--resume"), 2, "--out");

    [Fact]
    public void Should_name_an_unknown_config_file_key_with_exit_2()
    {
        using var dir = new ScratchDirectory();
        var file = dir.File("config.json");
        File.WriteAllText(file, """{ "epochs": 3, "learning-rat": 0.01 }""");
        AssertOneErrorLine(Cli.Run("train", "--config", file), 2, "learning-rat");
    }

    [Fact]
    public void Should_report_a_missing_config_file_with_exit_2()
    {
        using var dir = new ScratchDirectory();
        AssertOneErrorLine(Cli.Run("train", "--config", dir.File("nope.json")), 2, "nope.json");
    }

    [Fact]
    public void Should_reject_an_unknown_dataset_spec_with_exit_2()
    {
        using var dir = new ScratchDirectory();
        // The spec is only parsed when the data is opened, after start-up: still a usage error.
        AssertOneErrorLine(Cli.Run("train", "--dataset", "mnits", "--out", dir.File("run"), "--device", "cpu"), 2, "mnits");
    }

    [Fact]
    public void Should_report_a_corrupt_checkpoint_for_eval_with_exit_3()
    {
        using var dir = new ScratchDirectory();
        var checkpoint = dir.File("broken.ckpt");
        File.WriteAllBytes(checkpoint, [.. "DNMCKPT1"u8, 1, 2, 3, .. new byte[64]]);
        AssertOneErrorLine(Cli.Run("eval", "--checkpoint", checkpoint, "--dataset", "mnist"), 3, "broken.ckpt");
    }

    [Fact]
    public void Should_report_a_missing_checkpoint_for_map_with_exit_3()
    {
        using var dir = new ScratchDirectory();
        AssertOneErrorLine(Cli.Run("map", "--checkpoint", dir.File("none.ckpt"), "--out", dir.File("map")), 3, "none.ckpt");
    }
}

[Collection(TorchCollection.Name)]
public sealed class MissingDataSpec
{
    [Fact]
    public void Train_should_report_a_missing_dataset_file_with_exit_3()
    {
        using var dir = new ScratchDirectory();
        var result = Cli.Run("train", "--dataset", "idx:/nonexistent", "--out", dir.File("run"), "--device", "cpu", "--threads", "1");
        Assert.Equal(3, result.ExitCode);
        var line = Assert.Single(result.ErrorLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains("/nonexistent", line);
    }
}
