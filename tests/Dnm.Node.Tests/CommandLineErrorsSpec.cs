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
    public void Should_reject_a_map_whose_node_count_overflows_an_int_with_exit_2() =>
        // 65536 · 65536 is 2^32, which an int product wraps to 0: once it passed as a valid map.
        AssertOneErrorLine(Cli.Run("train", "--map", "65536x65536"), 2, "map '65536x65536' has 4294967296 nodes");

    [Theory]
    [InlineData("--gamma=NaN", "gamma must be a number >= 0, got NaN")]
    [InlineData("--sigma0=Infinity", "sigma0 must be a positive number, got Infinity")]
    [InlineData("--eta0=NaN", "eta0 must be in (0, 1], got NaN")]
    public void Should_reject_a_non_finite_number_with_exit_2(string flag, string mentions) =>
        AssertOneErrorLine(Cli.Run("train", flag), 2, mentions);

    [Fact]
    public void Should_reject_a_non_finite_number_in_a_config_file_with_exit_2()
    {
        using var dir = new ScratchDirectory();
        var file = dir.File("config.json");
        // JSON has no NaN literal; a quoted one is refused as a string where a number belongs.
        File.WriteAllText(file, """{ "alpha": "NaN" }""");
        AssertOneErrorLine(Cli.Run("train", "--config", file), 2, "alpha");
    }

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

    /// <summary>A checkpoint whose SHA-256 is right but whose header declares what no run writes.</summary>
    private static string HostileCheckpoint(ScratchDirectory dir, string map, string tensorsJson)
    {
        var config = new Dnm.Core.Config.DnmConfig().ToJson().Replace("\"map\": \"20x30\"", $"\"map\": \"{map}\"", StringComparison.Ordinal);
        var header = System.Text.Encoding.UTF8.GetBytes(
            $$"""{ "config": {{config}}, "state": {}, "shape": { "channels": 1, "height": 28, "width": 28 }, "adam-steps": 0, "tensors": {{tensorsJson}} }""");
        var length = BitConverter.GetBytes((uint)header.Length);
        byte[] body = [.. "DNMCKPT1"u8, .. length, .. header];
        var path = dir.File("hostile.ckpt");
        File.WriteAllBytes(path, [.. body, .. System.Security.Cryptography.SHA256.HashData(body)]);
        return path;
    }

    [Theory]
    [InlineData("eval", "20x30", """[{ "name": "som/w", "shape": [1048576, 1048576] }]""", "it holds 1 tensors")]
    [InlineData("map", "20x30", """[{ "name": "som/w", "shape": [1048576, 1048576] }]""", "it holds 1 tensors")]
    [InlineData("eval", "65536x65536", "[]", "map '65536x65536' has 4294967296 nodes")]
    public void Should_report_a_hostile_checkpoint_with_a_valid_hash_as_invalid_with_exit_3(string command, string map, string tensors, string mentions)
    {
        using var dir = new ScratchDirectory();
        var path = HostileCheckpoint(dir, map, tensors);
        var args = command == "map" ? new[] { "map", "--checkpoint", path, "--out", dir.File("out") } : ["eval", "--checkpoint", path];
        var result = Cli.Run([.. args, "--device", "cpu"]);
        AssertOneErrorLine(result, 3, $"invalid checkpoint {path}: ");
        Assert.Contains(mentions, result.ErrorLines[0]);
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
