namespace Dnm.Node.Tests;

/// <summary>--lattice and --toroidal on the command line and in a config file: parsed once, refused in one line with exit 2.</summary>
public sealed class LatticeFlagsSpec
{
    private static void AssertOneErrorLine(CliResult result, string mentions)
    {
        Assert.Equal(2, result.ExitCode);
        var line = Assert.Single(result.ErrorLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains(mentions, line);
    }

    [Fact]
    public void An_unknown_lattice_word_should_exit_2_naming_the_words() =>
        AssertOneErrorLine(Cli.Run("train", "--lattice", "square"), "square");

    [Fact]
    public void A_toroidal_value_that_is_no_boolean_should_exit_2() =>
        AssertOneErrorLine(Cli.Run("train", "--toroidal", "sometimes"), "sometimes");

    [Fact]
    public void A_toroidal_hex_map_with_an_odd_row_count_should_exit_2_suggesting_even_ones() =>
        AssertOneErrorLine(Cli.Run("train", "--map", "5x6", "--lattice", "hex", "--toroidal"), "a toroidal hex lattice needs an even number of rows (odd-r offset rows repeat every two), got map 5x6: use 6x6 or 4x6");

    [Fact]
    public void The_flags_should_set_the_keys_and_a_config_file_should_set_them_too()
    {
        using var dir = new ScratchDirectory();
        var file = dir.File("config.json");
        File.WriteAllText(file, """{ "lattice": "hex", "toroidal": true, "map": "4x4" }""");
        // An odd-row torus from the file is refused as from flags.
        AssertOneErrorLine(Cli.Run("train", "--config", file, "--map", "3x4"), "got map 3x4");
        // A flag overrides the file: --toroidal false makes the same map valid again (the run then stops at the dataset, exit 3).
        var result = Cli.Run("train", "--config", file, "--map", "3x4", "--toroidal", "false", "--dataset", "idx:/nonexistent",
            "--out", dir.File("run"), "--no-metrics");
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("\"lattice\": \"hex\"", result.Out);
        Assert.Contains("\"toroidal\": false", result.Out);
    }

    [Fact]
    public void An_unknown_lattice_in_a_config_file_should_exit_2_naming_the_key()
    {
        using var dir = new ScratchDirectory();
        var file = dir.File("config.json");
        File.WriteAllText(file, """{ "lattice": "hexagonal", "toroidal": true }""");
        AssertOneErrorLine(Cli.Run("train", "--config", file), "lattice must be one of rect, hex, got 'hexagonal'");
    }
}
