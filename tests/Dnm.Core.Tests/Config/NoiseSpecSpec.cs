using Dnm.Core.Config;

namespace Dnm.Core.Tests.Configuration;

public class NoiseSpecSpec
{
    [Theory]
    [InlineData("none", NoiseKind.None, 0)]
    [InlineData("gaussian:0.3", NoiseKind.Gaussian, 0.3)]
    [InlineData(" Masking:0.25 ", NoiseKind.Masking, 0.25)]
    [InlineData("gaussian:1e-2", NoiseKind.Gaussian, 0.01)]
    public void Should_parse_each_form_once_into_its_kind_and_amount(string text, NoiseKind kind, double amount)
    {
        var noise = NoiseSpec.Parse("denoise", text);
        Assert.Equal(new NoiseSpec(kind, amount), noise);
        Assert.Equal(noise, NoiseSpec.Parse("denoise", noise.ToString()));
    }

    [Theory]
    [InlineData("gaussian")]
    [InlineData("gaussian:")]
    [InlineData("gaussian:0")]
    [InlineData("gaussian:-1")]
    [InlineData("gaussian:NaN")]
    [InlineData("gaussian:Infinity")]
    [InlineData("masking:1")]
    [InlineData("masking:0")]
    [InlineData("salt:0.1")]
    [InlineData("")]
    public void Should_refuse_a_bad_value_with_one_line_naming_the_forms(string text)
    {
        var e = Assert.Throws<ConfigException>(() => NoiseSpec.Parse("denoise", text));
        Assert.StartsWith($"denoise '{text}' is not none, gaussian:σ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Should_round_trip_through_the_config_json_as_one_word()
    {
        var config = new DnmConfig { Denoise = new NoiseSpec(NoiseKind.Masking, 0.5), LabelledFraction = 0.01, LabelWeight = 0.5 };
        var json = config.ToJson();
        Assert.Contains("\"denoise\": \"masking:0.5\"", json);
        Assert.Equal(config, DnmConfig.FromJson(json, "x"));
        Assert.Equal(NoiseSpec.None, new DnmConfig().Denoise);
        var e = Assert.Throws<ConfigException>(() => DnmConfig.FromJson("""{ "denoise": "gaussian:-2" }""", "run.json"));
        Assert.Contains("gaussian:σ", e.Message);
    }

    [Fact]
    public void Should_name_each_bad_semi_supervised_key()
    {
        Assert.Empty(new DnmConfig { LabelledFraction = 1 }.Problems());
        Assert.Contains(new DnmConfig { LabelledFraction = 0 }.Problems(), p => p.StartsWith("labelled-fraction must be a fraction in (0, 1]", StringComparison.Ordinal));
        Assert.Contains(new DnmConfig { LabelledFraction = double.NaN }.Problems(), p => p.StartsWith("labelled-fraction", StringComparison.Ordinal));
        Assert.Contains(new DnmConfig { LabelledFraction = 0.1, Labelled = "keys.txt" }.Problems(), p => p.Contains("give one of them", StringComparison.Ordinal));
        Assert.Contains(new DnmConfig { LabelWeight = -1 }.Problems(), p => p.StartsWith("label-weight", StringComparison.Ordinal));
        Assert.Contains(new DnmConfig { Denoise = new NoiseSpec(NoiseKind.Masking, 2) }.Problems(), p => p.Contains("masking:p needs 0 < p < 1", StringComparison.Ordinal));
        Assert.True(new DnmConfig { Labelled = "keys.txt" }.SemiSupervised);
        Assert.False(new DnmConfig().SemiSupervised);
    }
}
