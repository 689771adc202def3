using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Core.Tests.Training;

public sealed class SmoothTargetsSpec
{
    private static readonly DnmConfig Smoothing = new() { Latent = 2, SmoothWeight = 1 };

    private static Checkpoint At(TrainingPhase phase, params NamedArray[] tensors) =>
        new(Smoothing, new RunState { Phase = phase }, new ImageShape(1, 2, 2), 0, tensors);

    [Fact]
    public void A_checkpoint_past_SOM_pretraining_without_targets_should_be_refused_while_smoothing_is_on()
    {
        foreach (var phase in new[] { TrainingPhase.Joint, TrainingPhase.Done })
        {
            var e = Assert.Throws<CheckpointException>(() => SmoothTargets.FromCheckpoint(At(phase), Smoothing, 3, "run/step-9.ckpt"));
            Assert.Contains("run/step-9.ckpt has no smoothed targets", e.Message);
        }
        // Before the targets are made, or with smoothing off, there are simply none.
        Assert.Null(SmoothTargets.FromCheckpoint(At(TrainingPhase.SomPretrain), Smoothing, 3, "c"));
        Assert.Null(SmoothTargets.FromCheckpoint(At(TrainingPhase.Joint), Smoothing with { SmoothWeight = 0 }, 3, "c"));
    }

    [Fact]
    public void Targets_should_round_trip_through_a_checkpoint_and_gather_the_rows_of_a_batch()
    {
        float[] values = [0, 1, 10, 11, 20, 21];
        var saved = SmoothTargets.From(values, 3, 2, "test").ToNamedArray();
        var loaded = SmoothTargets.FromCheckpoint(At(TrainingPhase.Joint, saved), Smoothing, 3, "c")!;
        Assert.Equal(values, loaded.Values);
        var batch = new float[8];
        Assert.Equal(new float[] { 20, 21, 0, 1 }, loaded.Gather([2, 0], batch).ToArray());
        // Targets for another dataset size are refused with both sizes named.
        var e = Assert.Throws<CheckpointException>(() => SmoothTargets.FromCheckpoint(At(TrainingPhase.Joint, saved), Smoothing, 4, "c"));
        Assert.Contains("for 3 samples", e.Message);
        Assert.Contains("the dataset has 4", e.Message);
    }
}
