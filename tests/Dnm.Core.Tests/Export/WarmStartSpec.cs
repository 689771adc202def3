using Dnm.Core.Config;
using Dnm.Core.Export;

namespace Dnm.Core.Tests.Export;

public class WarmStartSpec
{
    private static readonly DnmConfig Exported = new() { Encoder = EncoderKind.Mlp, Hidden = [32, 16], Latent = 4, Map = "4x4" };

    [Fact]
    public void Should_name_every_model_flag_that_differs_from_the_file_with_both_values()
    {
        var run = new DnmConfig { Encoder = EncoderKind.Mlp, Hidden = [32, 8], Latent = 6, Map = "4x4" };

        var e = Assert.Throws<ConfigException>(() => WarmStart.CheckConfig(run, Exported, InitParts.Both, "m.safetensors"));

        Assert.Contains("--init-from m.safetensors", e.Message);
        Assert.Contains("--hidden 32,16 (this run: 32,8)", e.Message);
        Assert.Contains("--latent 4 (this run: 6)", e.Message);
        Assert.DoesNotContain("--map", e.Message);
        Assert.DoesNotContain("--channels", e.Message);
    }

    [Fact]
    public void Should_compare_only_what_the_chosen_parts_depend_on()
    {
        // Prototypes need the latent size and the lattice, not the encoder; weights need the encoder, not the lattice.
        var otherEncoder = Exported with { Encoder = EncoderKind.Conv, Map = "4x4" };
        WarmStart.CheckConfig(otherEncoder, Exported, InitParts.Prototypes, "m");
        var otherMap = Exported with { Map = "5x5" };
        WarmStart.CheckConfig(otherMap, Exported, InitParts.Weights, "m");

        Assert.Contains("--map 4x4 (this run: 5x5)", Assert.Throws<ConfigException>(() => WarmStart.CheckConfig(otherMap, Exported, InitParts.Prototypes, "m")).Message);
        Assert.Contains("--encoder mlp (this run: conv)", Assert.Throws<ConfigException>(() => WarmStart.CheckConfig(otherEncoder, Exported, InitParts.Weights, "m")).Message);
    }
}
