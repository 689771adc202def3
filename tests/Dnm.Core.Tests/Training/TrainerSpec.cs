using Dnm.Core.Config;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public class TrainerSpec
{
    private static readonly DnmConfig Config = StepEngineSpec.Small with
    {
        Map = "3x3", BatchSize = 24, PretrainEpochs = 2, SomIterations = 30, Alpha = 10, Epochs = 3, CheckpointEvery = 7, Sigma0 = 1.5,
    };

    private sealed class CancelAfter(int steps, CancellationTokenSource cts) : ITrainingObserver
    {
        public void OnStep(StepReport report)
        {
            if (report.Phase != TrainingPhase.SomPretrain && report.GlobalStep == steps) cts.Cancel();
        }
    }

    private static ulong TrainToEnd(string outDir, Checkpoint? resume, ITrainingObserver observer, CancellationToken cancel, double smoothWeight = 0)
    {
        using var data = InMemoryDataset.Blobs(100, 1);
        using var trainer = new Trainer(Config with { Out = outDir, SmoothWeight = smoothWeight, SmoothNeighbours = 4, SmoothSteps = 3 }, data, data, CPU, new RunDirectory(outDir), observer);
        if (resume is not null) trainer.Resume(resume);
        trainer.Run(cancel);
        Assert.Equal(TrainingPhase.Done, trainer.State.Phase);
        return EngineState.Checksum(trainer.Engine);
    }

    [Theory]
    [InlineData(7, 0.0)]   // a mid-epoch checkpoint in pre-training
    [InlineData(21, 0.0)]  // a mid-epoch checkpoint in the joint phase (after SOM pre-training)
    [InlineData(21, 1.0)]  // the same with the smoothing term: its targets come back from the checkpoint
    public void Resume_from_checkpoint_ends_bitwise_equal_to_an_uninterrupted_run(int interruptAt, double smoothWeight)
    {
        using var dir = new ScratchDirectory();
        var reference = TrainToEnd(Path.Combine(dir.Path, "a"), null, new NoObserver(), CancellationToken.None, smoothWeight);

        var outB = Path.Combine(dir.Path, "b");
        using (var cts = new CancellationTokenSource())
        {
            Assert.ThrowsAny<OperationCanceledException>(() => TrainToEnd(outB, null, new CancelAfter(interruptAt, cts), cts.Token, smoothWeight));
        }
        var latest = Checkpoint.Latest(Path.Combine(outB, "checkpoints"));
        Assert.NotNull(latest);
        var checkpoint = Checkpoint.Load(latest);
        Assert.Equal(interruptAt, checkpoint.State.GlobalStep);
        var targets = checkpoint.Tensors.SingleOrDefault(t => t.Name == SmoothTargets.CheckpointName);
        if (smoothWeight > 0) Assert.Equal(new long[] { 100, Config.Latent }, targets!.Shape);
        else Assert.Null(targets);
        var resumed = TrainToEnd(outB, checkpoint, new NoObserver(), CancellationToken.None, smoothWeight);
        Assert.Equal(reference, resumed);
    }

    [Fact]
    public void The_smoothing_term_should_change_the_trained_map()
    {
        using var dir = new ScratchDirectory();
        var plain = TrainToEnd(Path.Combine(dir.Path, "a"), null, new NoObserver(), CancellationToken.None);
        var smoothed = TrainToEnd(Path.Combine(dir.Path, "b"), null, new NoObserver(), CancellationToken.None, smoothWeight: 1.0);
        Assert.NotEqual(plain, smoothed);
    }

    [Fact]
    public void Checkpoint_round_trips_and_rejects_corruption()
    {
        using var dir = new ScratchDirectory();
        using var data = InMemoryDataset.Blobs(48, 2);
        using var trainer = new Trainer(Config with { Out = dir.Path }, data, data, CPU, new RunDirectory(dir.Path), new NoObserver());
        var path = dir.File("x.ckpt");
        trainer.ToCheckpoint().Save(path);
        var loaded = Checkpoint.Load(path);
        // The config compares by value, its lists included (ValueList).
        Assert.Equal(Config with { Out = dir.Path }, loaded.Config);
        Assert.Equal(data.Shape, loaded.Shape);
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.EndsWith(".tmp", StringComparison.Ordinal));

        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains("corrupt", e.Message);
        File.WriteAllBytes(path, bytes.AsSpan(0, 100).ToArray());
        Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
    }

    [Fact]
    public void A_checkpoint_of_the_mlp_encoder_loads_into_the_same_model()
    {
        using var dir = new ScratchDirectory();
        using var data = InMemoryDataset.Blobs(48, 2);
        var config = Config with { Out = dir.Path, Encoder = EncoderKind.Mlp, Hidden = [20, 10], PretrainEpochs = 1, SomIterations = 5, Epochs = 1 };
        using var trainer = new Trainer(config, data, data, CPU, new RunDirectory(dir.Path), new NoObserver());
        trainer.Run(CancellationToken.None);
        var path = dir.File("mlp.ckpt");
        trainer.ToCheckpoint().Save(path);
        using var map = Core.Evaluation.TrainedMap.Load(path, CPU);
        Assert.Equal(EncoderKind.Mlp, map.Config.Encoder);
        Assert.Equal([20, 10], map.Config.Hidden);
        Assert.IsType<Core.Model.MlpAutoencoder>(map.Model.Autoencoder);
        Assert.Equal(EngineState.Checksum(trainer.Engine), map.Model.Checksum());
    }

    [Fact]
    public void Importing_state_of_a_different_model_shape_names_the_tensor()
    {
        using var dir = new ScratchDirectory();
        using var data = InMemoryDataset.Blobs(48, 2);
        using var a = new Trainer(Config with { Out = dir.Path }, data, data, CPU, new RunDirectory(dir.Path), new NoObserver());
        using var b = new StepEngine(Config with { Latent = 6 }, data.Shape, CPU, 8);
        var e = Assert.Throws<CheckpointException>(() => EngineState.Import(b, EngineState.Export(a.Engine), 0));
        Assert.Contains("encoderDense.weight", e.Message);
    }

    private sealed class NoObserver : ITrainingObserver;
}
