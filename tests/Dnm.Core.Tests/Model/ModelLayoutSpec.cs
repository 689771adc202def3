using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Model;

public class ModelLayoutSpec
{
    [Theory]
    [InlineData("conv", 1, 12, 12)]
    [InlineData("conv", 3, 5, 7)]
    [InlineData("mlp", 1, 12, 12)]
    [InlineData("mlp", 3, 4, 6)]
    public void The_layout_should_name_and_shape_exactly_what_the_engine_exports(string encoder, int channels, int height, int width)
    {
        var config = Training.StepEngineSpec.Small with { Encoder = KebabEnum.Parse<EncoderKind>("encoder", encoder), Hidden = [20, 10] };
        var shape = new ImageShape(channels, height, width);
        using var engine = new StepEngine(config, shape, CPU, 8);
        var exported = EngineState.Export(engine).Select(a => (a.Name, string.Join(",", a.Shape))).ToArray();
        var computed = EngineState.Layout(config, shape).Select(p => (p.Name, string.Join(",", p.Shape))).ToArray();
        Assert.Equal(exported, computed);
        Assert.Equal(engine.Model.Parameters.Sum(p => p.numel()), ModelLayout.Parameters(config, shape).Sum(p => p.Elements));
    }

    [Fact]
    public void A_model_over_the_parameter_limit_should_be_refused_before_it_is_built()
    {
        // 4096² RGB pixels into a 65536-wide layer: 3.3e12 parameters, 13 TB, were it allocated.
        var config = new DnmConfig { Encoder = EncoderKind.Mlp, Hidden = [65_536], Latent = 10, Map = "2x2" };
        var shape = new ImageShape(3, 4096, 4096);
        var e = Assert.Throws<ConfigException>(() => DnmModel.Create(config, shape, CPU));
        Assert.Contains("parameters, more than the limit", e.Message);
        Assert.Contains("hidden, latent or image-size", e.Message);
        Assert.Null(ModelLayout.Problem(config with { Hidden = [64] }, new ImageShape(1, 28, 28)));
    }
}
