using System.CommandLine;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Dnm.Core.Config;
using Dnm.Node.Commands;
using Dnm.Tests.Shared;

namespace Dnm.Node.Tests;

public sealed class ConfigFlagsSpec
{
    private static ResolvedConfig Resolve(string? configFile, params string[] args)
    {
        var flags = new ConfigFlags();
        var command = new RootCommand();
        foreach (var option in flags.Options) command.Add(option);
        var parsed = command.Parse(args);
        Assert.Empty(parsed.Errors);
        return flags.Resolve(parsed, configFile);
    }

    [Fact]
    public void Flags_should_override_the_config_file_which_overrides_the_defaults()
    {
        using var dir = new ScratchDirectory();
        var file = dir.File("run.json");
        File.WriteAllText(file, """
            {
              // comments are allowed
              "epochs": 7,
              "batch-size": 32,
              "channels": [4, 4, 2],
            }
            """);

        var resolved = Resolve(file, "--epochs", "2", "--map", "5x6", "--learning-rate", "0.01");

        var c = resolved.Config;
        Assert.Equal(2, c.Epochs);                       // flag over file
        Assert.Equal(32, c.BatchSize);                   // file over default
        Assert.Equal([4, 4, 2], c.Channels);
        Assert.Equal("5x6", c.Map);                      // flag over default
        Assert.Equal(0.01, c.LearningRate);
        Assert.Equal(new DnmConfig().Latent, c.Latent);  // default
        Assert.Equal(["batch-size", "channels", "epochs", "learning-rate", "map"], resolved.GivenKeys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Should_parse_channels_and_optional_numbers()
    {
        var c = Resolve(null, "--channels", "10, 8,5", "--limit", "100", "--sigma0", "2.5", "--seed", "18446744073709551615").Config;
        Assert.Equal([10, 8, 5], c.Channels);
        Assert.Equal(100, c.Limit);
        Assert.Equal(2.5, c.Sigma0);
        Assert.Equal(ulong.MaxValue, c.Seed);
    }

    [Fact]
    public void Should_parse_the_mlp_encoder_and_its_widths()
    {
        var c = Resolve(null, "--encoder", "mlp", "--hidden", "500, 500,2000", "--latent", "10").Config;
        Assert.Equal(EncoderKind.Mlp, c.Encoder);
        Assert.Equal([500, 500, 2000], c.Hidden);
        Assert.Empty(c.Problems());
        Assert.Equal(EncoderKind.Mlp, Resolve(null).Config.Encoder);
        Assert.Equal(EncoderKind.Conv, Resolve(null, "--encoder", "conv").Config.Encoder);
    }

    public static TheoryData<string> ShippedConfigs => new(Directory.GetFiles(Repo.Path("configs"), "*.json").Select(Path.GetFileName)!);

    [Theory]
    [MemberData(nameof(ShippedConfigs))]
    public void Shipped_config_files_should_be_valid(string name)
    {
        var resolved = Resolve(Repo.Path("configs", name));
        Assert.NotEmpty(resolved.GivenKeys);
        Assert.Empty(resolved.Config.Problems());
    }

    [Theory]
    [InlineData("--augment-rotation", "-1", "augment-rotation must be in [0, 180] degrees, got -1")]
    [InlineData("--augment-shift", "1", "augment-shift must be a fraction in [0, 1), got 1")]
    public void Should_name_an_augmentation_range_that_is_out_of_bounds(string flag, string value, string problem)
    {
        var c = Resolve(null, flag, value).Config;
        Assert.Equal([problem], c.Problems());
        Assert.Empty(Resolve(null, "--augment-rotation", "10", "--augment-shift", "0.1").Config.Problems());
    }

    /// <summary>Every float key of the config (double or double?), by its flag name.</summary>
    /// <summary>A property's config key: its JSON name (batch-size and alpha name the nullable settings behind their values).</summary>
    private static string KeyOf(PropertyInfo p) =>
        p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.KebabCaseLower.ConvertName(p.Name);

    public static TheoryData<string, string> FloatKeysWithNonFiniteValues()
    {
        var data = new TheoryData<string, string>();
        foreach (var p in typeof(DnmConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance))
            if (p.GetCustomAttribute<JsonIgnoreAttribute>() is null && p.CanWrite && (p.PropertyType == typeof(double) || p.PropertyType == typeof(double?)))
                foreach (var value in new[] { "NaN", "Infinity", "-Infinity" })
                    data.Add(KeyOf(p), value);
        return data;
    }

    [Theory]
    [MemberData(nameof(FloatKeysWithNonFiniteValues))]
    public void Should_reject_a_non_finite_value_for_every_float_key_naming_the_key(string key, string value)
    {
        // "--key=-Infinity": a separate "-Infinity" token would read as an option.
        var problem = Assert.Single(Resolve(null, $"--{key}={value}").Config.Problems());
        Assert.StartsWith($"{key} must be ", problem);
        Assert.EndsWith($"got {value}", problem);
    }

    [Fact]
    public void The_float_keys_found_should_include_those_that_once_took_NaN()
    {
        var keys = FloatKeysWithNonFiniteValues().Select(row => (string)row[0]).ToHashSet();
        Assert.Subset(keys, new HashSet<string> { "gamma", "beta", "alpha", "sigma0", "eta0", "sigma-floor", "learning-rate", "dof" });
    }

    [Theory]
    [InlineData("--map", "65536x65536", "map '65536x65536' has 4294967296 nodes, more than the limit of 1000000")]
    [InlineData("--map", "2147483647x2", "map '2147483647x2' has 4294967294 nodes")]
    [InlineData("--map", "1000x1000", "map 1000x1000 with latent 1000 needs 1000000000 prototype floats")]
    [InlineData("--latent", "100000", "latent must be in [1, 65536], got 100000")]
    [InlineData("--hidden", "500,100000", "hidden widths must be at most 65536, got 500,100000")]
    [InlineData("--channels", "10,5000", "channels widths must be at most 4096, got 10,5000")]
    [InlineData("--kernel", "33", "kernel must be a positive odd number ('same' padding) of at most 31, got 33")]
    [InlineData("--image-size", "100000", "image-size must be in [1, 4096], got 100000")]
    [InlineData("--batch-size", "2000000", "batch-size must be in [1, 1048576], got 2000000")]
    public void Should_bound_map_model_and_image_sizes_naming_the_key(string flag, string value, string problem)
    {
        var args = flag == "--map" && value == "1000x1000" ? new[] { flag, value, "--latent", "1000" } : [flag, value];
        var problems = Resolve(null, args).Config.Problems();
        Assert.Contains(problems, p => p.StartsWith(problem, StringComparison.Ordinal));
        Assert.Single(problems);
    }

    [Fact]
    public void Should_offer_a_flag_for_every_config_key()
    {
        var keys = typeof(DnmConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<JsonIgnoreAttribute>() is null && p.CanWrite)
            .Select(KeyOf)
            .Order(StringComparer.Ordinal);
        Assert.Equal(keys, new ConfigFlags().Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Should_name_the_flag_like_the_key_it_sets()
    {
        var flags = new ConfigFlags();
        Assert.Equal(flags.Keys.Select(k => "--" + k), flags.Options.Select(o => o.Name));
    }
}
