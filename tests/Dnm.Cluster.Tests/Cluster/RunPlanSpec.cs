using Dnm.Cluster.Coordination;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>The coordinator's plan must take the Trainer's steps: same batches, schedule values and checkpoints.</summary>
public sealed class RunPlanSpec
{
    private sealed class Recorder : ITrainingObserver
    {
        public List<string> Steps { get; } = [];
        public List<string> Checkpoints { get; } = [];
        public void OnStep(StepReport r)
        {
            if (r.Phase != TrainingPhase.SomPretrain) Steps.Add(Describe(r.Phase, r.Epoch, r.StepInEpoch, r.GlobalStep, r.Samples, r.Sigma, r.Eta));
        }
        public void OnCheckpoint(string path, long bytes, TimeSpan duration) => Checkpoints.Add(Path.GetFileName(path));
    }

    private static string Describe(TrainingPhase phase, int epoch, int stepInEpoch, long globalStep, int samples, double sigma, double eta) =>
        $"{phase} e{epoch} s{stepInEpoch} g{globalStep} b{samples} σ{sigma:R} η{eta:R}";

    [Theory]
    [InlineData("continue", 70)] // 70 samples, batch 12: a partial last batch of 10
    [InlineData("epoch", 72)]
    [InlineData("step", 72)]
    public void Should_take_the_same_steps_and_checkpoints_as_the_trainer(string counter, int samples)
    {
        using var dir = new TempDir();
        var config = TinyRun.Config(TinyRun.WriteDataset(dir.Path, samples), dir.Sub("run")) with { ScheduleCounter = counter, CheckpointEvery = 4, EvalEvery = 1 };
        var recorder = new Recorder();
        var trainerEvaluations = new List<string>();
        var evaluations = new List<string>();
        using (var train = TrainingRun.OpenSplit(config, "train", null, null))
        using (var trainer = new Trainer(config, train, TorchSharp.torch.CPU, new RunDirectory(config.Out), recorder))
            trainer.Run((t, epoch) => trainerEvaluations.Add($"e{epoch} g{t.State.GlobalStep}"), CancellationToken.None);

        var plan = new RunPlan(config, samples);
        var state = new RunState();
        var steps = new List<string>();
        var checkpoints = new List<string>();
        for (var done = false; !done;)
        {
            switch (plan.Next(state))
            {
                case EnterPhase e:
                    state = e.State;
                    break;
                case PretrainSom:
                    // ReplicaBackend runs the Trainer's own SomPretrainer here: a checkpoint every CheckpointEvery
                    // iterations (before the last), and one after the phase.
                    state = state with { Phase = TrainingPhase.Joint, Epoch = 0, StepInEpoch = 0, PhaseStep = 0 };
                    checkpoints.AddRange(Enumerable.Repeat(Checkpoint.FileName(state.GlobalStep), (config.SomIterations - 1) / config.CheckpointEvery + 1));
                    evaluations.Add($"e0 g{state.GlobalStep}"); // ReplicaBackend evaluates after SOM pre-training
                    break;
                case PlannedStep p:
                    var joint = p.Mode == StepMode.Joint;
                    steps.Add(Describe(p.Phase, p.Epoch, p.StepInEpoch + 1, state.GlobalStep + 1, p.BatchLength,
                        joint ? p.Schedule.Sigma : double.NaN, joint ? p.Schedule.Eta : double.NaN));
                    (state, var checkpoint, var evaluate) = plan.AfterStep(state);
                    if (checkpoint) checkpoints.Add(Checkpoint.FileName(state.GlobalStep));
                    if (evaluate) evaluations.Add($"e{state.Epoch} g{state.GlobalStep}");
                    break;
                case PlanFinished:
                    done = true;
                    break;
            }
        }
        Assert.Equal(recorder.Steps, steps);
        Assert.Equal(recorder.Checkpoints, checkpoints);
        Assert.Equal(trainerEvaluations, evaluations);
    }
}
