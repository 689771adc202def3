using Dnm.Core.Config;
using Dnm.Core.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Configuration;

/// <summary>
/// The defaults that scale with a run: the batch size with the training set, α with the SOM pre-training, and Adam's
/// warm-up (docs/algorithm.md, "Short runs").
/// </summary>
public class ShortRunDefaultsSpec
{
    [Theory]
    [InlineData(60_000, 256)] // MNIST: the default run is unchanged
    [InlineData(16_384, 256)] // 64 steps of 256
    [InlineData(16_383, 128)]
    [InlineData(8_192, 128)]
    [InlineData(8_191, 64)]
    [InlineData(4_096, 64)]
    [InlineData(4_000, 32)]   // the quick run: 125 steps an epoch instead of 16
    [InlineData(100, 32)]     // never below 32
    public void An_unchosen_batch_size_gives_a_small_training_set_an_epoch_of_64_steps(int samples, int batch)
    {
        Assert.Equal(batch, DnmConfig.BatchSizeFor(samples));
        var sized = new DnmConfig().ForTrainingSet(samples);
        Assert.Equal(batch, sized.BatchSize);
        Assert.True(sized.BatchSizeChosen);
    }

    [Fact]
    public void A_chosen_batch_size_is_kept_and_the_fitted_one_is_what_the_json_holds()
    {
        Assert.Equal(256, new DnmConfig { BatchSize = 256 }.ForTrainingSet(4000).BatchSize);
        Assert.Equal(256, DnmConfig.FromJson("""{ "batch-size": 256 }""", "run.json").ForTrainingSet(4000).BatchSize);
        Assert.False(DnmConfig.FromJson("""{ "epochs": 2 }""", "run.json").BatchSizeChosen);
        // A checkpoint's config (written after the fitting) resumes with the number it ran with, whatever the set.
        var written = new DnmConfig().ForTrainingSet(4000).ToJson();
        Assert.Contains("\"batch-size\": 32", written);
        Assert.Equal(32, DnmConfig.FromJson(written, "checkpoint").ForTrainingSet(60_000).BatchSize);
    }

    [Fact]
    public void Alpha_follows_the_som_iterations_unless_set()
    {
        Assert.Equal(2000, new DnmConfig().Alpha); // the paper's, for its 10,000 iterations
        Assert.Equal(400, new DnmConfig { SomIterations = 2000 }.Alpha);
        Assert.Equal(2000, new DnmConfig { SomIterations = 0 }.Alpha);
        Assert.Equal(123, new DnmConfig { SomIterations = 2000, Alpha = 123 }.Alpha);
        Assert.Equal(123, DnmConfig.FromJson("""{ "som-iterations": 2000, "alpha": 123 }""", "run.json").Alpha);
        // Unset, it stays the rule through JSON (config.json says null, as it does for sigma0).
        var unset = new DnmConfig { SomIterations = 2000 };
        Assert.Contains("\"alpha\": null", unset.ToJson());
        Assert.Equal(unset, DnmConfig.FromJson(unset.ToJson(), "config.json"));
    }

    [Fact]
    public void Warm_up_scales_the_first_updates_by_t_over_w_on_both_update_paths()
    {
        const double lr = 1e-2;
        const int warmup = 4;
        var host = new Parameter(zeros(3));
        var tensors = new Parameter(zeros(3));
        using var hostAdam = new AdamOptimizer([host], lr, warmup);
        using var tensorAdam = new AdamOptimizer([tensors], lr, warmup);
        Assert.Equal(lr / 4, hostAdam.RateAt(1), 15);
        Assert.Equal(lr, hostAdam.RateAt(4), 15);
        Assert.Equal(lr, hostAdam.RateAt(1000), 15);
        Assert.Equal(lr, new AdamOptimizer([new Parameter(zeros(1))], lr).RateAt(1), 15);

        // A constant gradient: Adam's bias-corrected step is the rate itself, so θ after t steps is −Σ rate(k).
        using var gradient = full(3, 0.5f);
        var expected = 0.0;
        for (var t = 1; t <= 6; t++)
        {
            hostAdam.StepOnHost(gradient, [false], 0, (n, body) => { for (var i = 0; i < n; i++) body(i); });
            tensorAdam.Step([gradient]);
            expected -= Math.Min(1.0, t / (double)warmup) * lr;
            Assert.Equal(expected, host[0].item<float>(), 5);
            Assert.Equal(expected, tensors[0].item<float>(), 5);
        }
    }
}
