using Dnm.Core.Config;
using Dnm.Core.Som;
using Dnm.Core.Training;

namespace Dnm.Core.Tests.Configuration;

/// <summary>
/// The defaults chosen for an ordered map (docs/BENCHMARKS.md, "Ordered maps"): the fully connected autoencoder with its
/// own latent, the hex lattice with σ floored at 0.6, and smoothing fitted to the training set's size.
/// </summary>
public class OrderedDefaultsSpec
{
    [Fact]
    public void The_defaults_are_the_measured_ordered_set_up()
    {
        var c = new DnmConfig();
        Assert.Equal((EncoderKind.Mlp, 10, LatticeKind.Hex, 0.6, 25, 8), (c.Encoder, c.Latent, c.Lattice, c.SigmaFloor, c.PretrainEpochs, c.Epochs));
        // The conv encoder keeps the paper's latent unless one is given.
        Assert.Equal(100, (c with { Encoder = EncoderKind.Conv }).Latent);
        Assert.Equal(7, (c with { Encoder = EncoderKind.Conv, Latent = 7 }).Latent);
        Assert.Equal(100, DnmConfig.FromJson("""{ "encoder": "conv" }""", "run.json").Latent);
    }

    [Theory]
    [InlineData(4_000, 10)]
    [InlineData(60_000, 10)]   // MNIST and Fashion-MNIST
    [InlineData(200_000, 10)]
    [InlineData(200_001, 0)]   // past here the exact neighbour graph's quadratic cost must be asked for
    public void An_unchosen_smoothing_weight_follows_the_training_set(int samples, double weight)
    {
        var sized = new DnmConfig().ForTrainingSet(samples);
        Assert.Equal(weight, sized.SmoothWeight);
        Assert.True(sized.SmoothWeightChosen, "config.json, checkpoints and workers must see the number");
        // What the config says, by a flag, a file or a checkpoint, is kept.
        Assert.Equal(0, new DnmConfig { SmoothWeight = 0 }.ForTrainingSet(samples).SmoothWeight);
        Assert.Equal(3, DnmConfig.FromJson("""{ "smooth-weight": 3 }""", "run.json").ForTrainingSet(samples).SmoothWeight);
        Assert.False(DnmConfig.FromJson("""{ "epochs": 2 }""", "run.json").SmoothWeightChosen);
    }

    [Fact]
    public void A_sized_config_says_once_what_it_chose()
    {
        var said = new List<string>();
        var sized = TrainingRun.SizedFor(new DnmConfig(), 300_000, said.Add);
        Assert.Equal(0, sized.SmoothWeight);
        Assert.Contains(said, l => l.StartsWith("smooth-weight 0: the default above 200000 training samples", StringComparison.Ordinal));
        said.Clear();
        TrainingRun.SizedFor(new DnmConfig { SmoothWeight = 2 }, 300_000, said.Add);
        Assert.DoesNotContain(said, l => l.StartsWith("smooth-weight", StringComparison.Ordinal));
    }

    [Fact]
    public void A_config_round_trips_its_unset_keys_as_unset()
    {
        var again = DnmConfig.FromJson(new DnmConfig().ToJson(), "config.json");
        Assert.Equal(new DnmConfig(), again);
        Assert.Null(again.LatentSetting);
        Assert.False(again.SmoothWeightChosen);
    }
}
