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
        var config = new DnmConfig { Encoder = EncoderKind.Mlp, Hidden = [16, 12], Latent = 3 };
        using var model = DnmModel.Drawing(() => Autoencoder.Create(Shape, config));
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
        foreach (var encoder in Enum.GetValues<EncoderKind>())
        {
            var config = new DnmConfig { Encoder = encoder, Channels = [3], Kernel = 3, Hidden = [8], Latent = 4 };
            using var plain = DnmModel.Drawing(() => Autoencoder.Create(Shape, config));
            using var squashed = DnmModel.Drawing(() => Autoencoder.Create(Shape, config with { LatentActivation = LatentActivation.Sigmoid }));
            squashed.load_state_dict(plain.state_dict());
            Assert.True(squashed.Encode(x).allclose(plain.Encode(x).sigmoid()), encoder.ToString());
        }
    }

    [Fact]
    public void Conv_buffer_is_the_widest_im2col_column()
    {
        using var model = DnmModel.Drawing(() => Autoencoder.Create(Shape, new DnmConfig { Encoder = EncoderKind.Conv, Channels = [3, 7], Kernel = 3, Latent = 4 }));
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
            ? new DnmConfig { Encoder = (EncoderKind)7 } // built in code, outside the set
            : new DnmConfig { Encoder = EncoderKind.Mlp, Hidden = value.Length == 0 ? [] : value.Split(',').Select(int.Parse).ToArray() };
        var problem = Assert.Single(config.Problems());
        Assert.StartsWith(key, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("encoder", "dense", "conv, mlp")]
    [InlineData("som-rule", "online", "minibatch, batch")]
    [InlineData("schedule-counter", "Epoch", "continue, step, epoch")] // words are exact, lower case
    [InlineData("on-bad-image", "1", "fail, skip")]
    public void An_unknown_word_in_a_config_file_is_one_line_naming_the_key_and_the_words(string key, string value, string words)
    {
        var json = value == "1" ? $"{{ \"{key}\": 1 }}" : $"{{ \"{key}\": \"{value}\" }}";
        var e = Assert.Throws<ConfigException>(() => DnmConfig.FromJson(json, "run.json"));
        Assert.Equal($"config run.json is not valid: {key} must be one of {words}, got '{(value == "1" ? "Number" : value)}'", e.Message);
    }

    [Fact]
    public void Enum_keys_round_trip_as_their_words()
    {
        var config = new DnmConfig { Encoder = EncoderKind.Mlp, SomRule = Core.Som.SomRule.Minibatch, ScheduleCounter = ScheduleCounter.Epoch,
            Target = TargetDistribution.Authors, LatentActivation = LatentActivation.Sigmoid, OnBadImage = Core.Data.BadFilePolicy.Skip };
        var json = config.ToJson();
        foreach (var word in new[] { "\"mlp\"", "\"minibatch\"", "\"epoch\"", "\"authors\"", "\"sigmoid\"", "\"skip\"" }) Assert.Contains(word, json);
        var back = DnmConfig.FromJson(json, "x");
        Assert.Equal((config.Encoder, config.SomRule, config.ScheduleCounter, config.Target, config.LatentActivation, config.OnBadImage),
            (back.Encoder, back.SomRule, back.ScheduleCounter, back.Target, back.LatentActivation, back.OnBadImage));
    }
}
