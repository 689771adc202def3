using Dnm.Core.Config;
using Dnm.Core.Training;

namespace Dnm.Core.Tests.Training;

public class CheckpointPolicySpec
{
    private static RunState Som(long phaseStep) => new() { Phase = TrainingPhase.SomPretrain, GlobalStep = 40, PhaseStep = phaseStep };
    private static readonly RunState AfterSom = new() { Phase = TrainingPhase.Joint, GlobalStep = 40 };
    private static RunState Step(long g) => new() { Phase = TrainingPhase.Joint, GlobalStep = g, StepInEpoch = 1, PhaseStep = g - 40 };

    [Fact]
    public void No_two_states_of_a_run_share_a_file_name()
    {
        var pretrainEnd = new RunState { Phase = TrainingPhase.Pretrain, GlobalStep = 40, Epoch = 2 };
        var names = new[] { pretrainEnd, Som(100), Som(200), AfterSom, Step(41) }.Select(Checkpoint.FileName).ToArray();
        Assert.Equal(names.Length, names.Distinct().Count());
        Assert.Equal(["step-000000040.ckpt", "step-000000040-som-000000100.ckpt", "step-000000040-som-000000200.ckpt",
            "step-000000040-som-done.ckpt", "step-000000041.ckpt"], names);
    }

    [Fact]
    public void The_newest_checkpoint_is_the_latest_state_not_the_last_name()
    {
        using var dir = new ScratchDirectory();
        // In name order the pre-training end (step-…040.ckpt) sorts after the SOM ones ('-' < '.'); in state order it is first.
        foreach (var name in new[] { "step-000000040-som-done.ckpt", "step-000000040.ckpt", "step-000000040-som-000000100.ckpt", "other.ckpt", "step-x.ckpt" })
            File.WriteAllText(dir.File(name), "");
        Assert.Equal(["step-000000040.ckpt", "step-000000040-som-000000100.ckpt", "step-000000040-som-done.ckpt"],
            Checkpoint.InOrder(dir.Path).Select(Path.GetFileName));
        Assert.Equal("step-000000040-som-done.ckpt", Path.GetFileName(Checkpoint.Latest(dir.Path)));
        File.WriteAllText(dir.File("step-000000041.ckpt"), "");
        Assert.Equal("step-000000041.ckpt", Path.GetFileName(Checkpoint.Latest(dir.Path)));
    }

    [Fact]
    public void A_checkpoint_is_due_when_planned_or_after_the_interval_and_never_twice_for_one_state()
    {
        var policy = new CheckpointPolicy(new DnmConfig { CheckpointMinutes = 0 }); // no wall-time checkpoints
        Assert.True(policy.Due(Step(50), planned: true));
        Assert.False(policy.Due(Step(51), planned: false));
        policy.Saved(Step(50));
        Assert.False(policy.Due(Step(50), planned: true)); // the same state again: never rewritten
        Assert.True(policy.Due(Step(60), planned: true));

        var every = new CheckpointPolicy(new DnmConfig { CheckpointMinutes = 1e-9 }); // the interval has always passed
        Assert.True(every.Due(Som(7), planned: false));
        every.Saved(Som(7));
        Assert.False(every.Due(Som(7), planned: false));
        Assert.True(every.Due(Som(8), planned: false));
    }
}
