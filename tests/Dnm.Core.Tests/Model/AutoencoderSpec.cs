using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Model;

public class AutoencoderSpec
{
    private static readonly ImageShape Shape = new(2, 6, 5);

    [Fact]
    public void Mlp_maps_images_to_the_latent_and_back_through_the_configured_widths()
    {
        using var scope = NewDisposeScope();
        var config = new DnmConfig { Encoder = "mlp", Hidden = [16, 12], Latent = 3 };
        using var model = Autoencoder.Create(Shape, config);
        Assert.IsType<MlpAutoencoder>(model);
        var x = rand(new long[] { 4, 2, 6, 5 }, generator: new Generator(1));
        var z = model.Encode(x);
        Assert.Equal(new long[] { 4, 3 }, z.shape);
        var xHat = model.Decode(z);
        Assert.Equal(x.shape, xHat.shape);
        Assert.True(xHat.min().item<float>() >= 0 && xHat.max().item<float>() <= 1, "the decoder ends in a sigmoid");

        // θ: 60→16→12→3; φ mirrors it: 3→12→16→60. The L2 penalty reads θ alone.
        var encoder = model.EncoderParameters().Select(p => p.shape).ToArray();
        Assert.Equal([[16, 60], [16], [12, 16], [12], [3, 12], [3]], encoder);
        var all = model.parameters().Select(p => p.shape).ToArray();
        Assert.Equal(encoder.Concat([[12, 3], [12], [16, 12], [16], [60, 16], [60]]), all);
        Assert.Equal(60 * sizeof(float), model.StepBufferBytesPerSample); // the image is wider than any layer
    }

    [Fact]
    public void Sigmoid_latent_applies_to_both_encoders()
    {
        using var scope = NewDisposeScope();
        var x = rand(new long[] { 3, 2, 6, 5 }, generator: new Generator(2));
        foreach (var encoder in DnmConfig.Choices.Encoder)
        {
            var config = new DnmConfig { Encoder = encoder, Channels = [3], Kernel = 3, Hidden = [8], Latent = 4 };
            using var plain = Autoencoder.Create(Shape, config);
            using var squashed = Autoencoder.Create(Shape, config with { LatentActivation = "sigmoid" });
            squashed.load_state_dict(plain.state_dict());
            Assert.True(squashed.Encode(x).allclose(plain.Encode(x).sigmoid()), encoder);
        }
    }

    [Fact]
    public void Conv_buffer_is_the_widest_im2col_column()
    {
        using var model = Autoencoder.Create(Shape, new DnmConfig { Channels = [3, 7], Kernel = 3, Latent = 4 });
        Assert.IsType<ConvAutoencoder>(model);
        Assert.Equal(7L * 3 * 3 * 6 * 5 * sizeof(float), model.StepBufferBytesPerSample);
    }

    [Theory]
    [InlineData("encoder", "dense")]
    [InlineData("hidden", "")]
    [InlineData("hidden", "8,0")]
    public void Bad_model_keys_are_config_problems(string key, string value)
    {
        var config = key == "encoder"
            ? new DnmConfig { Encoder = value }
            : new DnmConfig { Encoder = "mlp", Hidden = value.Length == 0 ? [] : value.Split(',').Select(int.Parse).ToArray() };
        var problem = Assert.Single(config.Problems());
        Assert.StartsWith(key, problem, StringComparison.Ordinal);
    }
}
