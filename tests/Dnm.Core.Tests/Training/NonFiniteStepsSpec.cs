using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

/// <summary>A step whose reduced sums hold NaN or infinity is skipped by the replica, counted, and fails the run when it repeats.</summary>
public class NonFiniteStepsSpec
{
    [Theory]
    [InlineData(1, -1)]
    [InlineData(37, -1)]
    [InlineData(37, 0)]
    [InlineData(37, 17)]
    [InlineData(37, 36)] // in the scalar tail after the vectors
    [InlineData(1024, 1023)]
    public void AllFinite_should_find_NaN_and_both_infinities_anywhere(int length, int at)
    {
        var values = Enumerable.Range(0, length).Select(i => (float)Math.Sin(i) * 1e30f).ToArray();
        values[0] = float.MaxValue;
        Assert.True(NonFiniteSteps.AllFinite(values));
        if (at < 0) return;
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var copy = values.ToArray();
            copy[at] = bad;
            Assert.False(NonFiniteSteps.AllFinite(copy), $"{bad} at {at} of {length}");
        }
    }

    [Fact]
    public void Record_should_warn_for_a_skipped_step_reset_on_an_applied_one_and_fail_after_five_in_a_row()
    {
        var guard = new NonFiniteSteps();
        var skipped = new StepLoss(double.NaN, 1, 0, double.NaN, 8, Skipped: true);
        var applied = new StepLoss(1, 1, 0, 2, 8);
        for (var i = 1; i <= 4; i++) Assert.StartsWith($"warning: step {i} skipped", guard.Record(i, skipped));
        Assert.Null(guard.Record(5, applied));
        for (var i = 6; i <= 9; i++) Assert.False(guard.Record(i, skipped) is null || guard.Failed);
        var failure = guard.Record(10, skipped, "rank 1 (worker w1)");
        Assert.True(guard.Failed);
        Assert.Equal(9, guard.Skipped);
        Assert.StartsWith("5 steps in a row, the last step 10, had NaN or infinity in their reduced gradients or statistics (non-finite contribution from rank 1 (worker w1)): the run diverged", failure);
    }

    [Fact]
    public void A_batch_holding_NaN_should_be_skipped_without_touching_the_model_and_the_next_applied()
    {
        var config = StepEngineSpec.Small with { BatchSize = 32 };
        using var clean = InMemoryDataset.Blobs(64, 1);
        var pixels = new float[64 * clean.Shape.Pixels];
        for (var i = 0; i < 64; i++) clean.CopyImage(i, pixels.AsSpan(i * clean.Shape.Pixels, clean.Shape.Pixels));
        pixels[5] = float.NaN; // one pixel of sample 0
        using var data = new InMemoryDataset(pixels, Enumerable.Range(0, 64).Select(i => i % 4).ToArray(), clean.Shape);
        using var engine = new StepEngine(config, data.Shape, CPU, 32);
        var runner = new StepRunner(config, engine, data, null);
        var order = ShardSampler.EpochOrder(data.Count, config.Seed, 0);
        var poisoned = ShardSampler.GlobalBatch(order, 0, 32).Contains(0) ? 0 : 1;

        for (var step = 0; step < 2; step++)
        {
            var before = EngineState.Checksum(engine);
            var adamSteps = engine.Optimizer.Steps;
            using var trace = StepTracer.Untraced().Begin(step + 1, "pretrain");
            var outcome = runner.Run(new StepInput(step, StepMode.Autoencoder, 0, step, new ScheduleValues(1, 0.1)), LocalReducer.Instance, trace);
            Assert.Equal(step == poisoned, outcome.Loss.Skipped);
            Assert.Equal(step == poisoned, before == EngineState.Checksum(engine));
            Assert.Equal(adamSteps + (step == poisoned ? 0 : 1), engine.Optimizer.Steps);
        }
        Assert.DoesNotContain(EngineState.Export(engine), t => !NonFiniteSteps.AllFinite(t.Data));
    }

    [Fact]
    public void A_diverging_run_should_fail_with_one_clear_error_after_five_skipped_steps()
    {
        using var dir = new ScratchDirectory();
        using var data = InMemoryDataset.Blobs(100, 1);
        // Adam moves every weight by about the learning rate: after one step of 1e30 the activations overflow float.
        var config = StepEngineSpec.Small with { Map = "3x3", BatchSize = 24, PretrainEpochs = 3, Epochs = 1, SomIterations = 5, LearningRate = 1e30, Out = dir.Path };
        var messages = new List<string>();
        var observer = new Messages(messages);
        using var trainer = new Trainer(config, data, data, CPU, new RunDirectory(dir.Path), observer);
        var e = Assert.Throws<NonFiniteStepException>(() => trainer.Run(CancellationToken.None));
        Assert.Matches(@"^5 steps in a row, the last step \d+, had NaN or infinity .* the run diverged\. Lower --learning-rate", e.Message);
        Assert.Equal(4, messages.Count(m => m.StartsWith("warning: step ", StringComparison.Ordinal) && m.Contains(" skipped: ")));
        Assert.Equal(5, observer.Skipped);
        Assert.DoesNotContain(EngineState.Export(trainer.Engine), t => !NonFiniteSteps.AllFinite(t.Data));
    }

    private sealed class Messages(List<string> lines) : ITrainingObserver
    {
        public int Skipped;
        public void OnMessage(string message) => lines.Add(message);
        public void OnStep(StepReport report) { if (report.Loss.Skipped) Skipped++; }
    }
}
