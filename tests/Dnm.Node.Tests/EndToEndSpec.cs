using System.Text.Json;
using Dnm.Core.Config;

namespace Dnm.Node.Tests;

/// <summary>One tiny training run through the CLI, shared by the specs that use its results.</summary>
public sealed class TrainedRunFixture : IDisposable
{
    /// <summary>Small enough to train in about a second on one thread; the shape of a real run otherwise.</summary>
    public static readonly string[] TinyRun =
    [
        "--map", "4x4", "--epochs", "2", "--pretrain-epochs", "1", "--som-iterations", "50", "--batch-size", "64",
        "--encoder", "conv", "--channels", "4,4,2", "--latent", "8", "--device", "cpu", "--threads", "1",
        // Chosen, like the batch size: an unset smooth-weight is fitted to the training set after the config is logged.
        "--smooth-weight", "0",
    ];

    public TrainedRunFixture()
    {
        Dataset = SyntheticIdx.Spec(Directory.Path);
        ConfigFile = Directory.File("config.json");
        // The file sets epochs too, and the flag must win; seed and eval-limit come only from the file.
        File.WriteAllText(ConfigFile, """{ "epochs": 9, "seed": 3, "eval-limit": 128 }""");
        RunDirectory = Directory.File("run");
        Train = Cli.Run(["train", "--dataset", Dataset, "--config", ConfigFile, "--out", RunDirectory, .. TinyRun]);
    }

    public ScratchDirectory Directory { get; } = new();
    public string Dataset { get; }
    public string ConfigFile { get; }
    public string RunDirectory { get; }
    public CliResult Train { get; }
    public string FinalCheckpoint => Path.Combine(RunDirectory, "checkpoints", "final.ckpt");

    public void Dispose() => Directory.Dispose();
}

[Collection(TorchCollection.Name)]
public sealed class EndToEndSpec(TrainedRunFixture run) : IClassFixture<TrainedRunFixture>
{
    private static readonly string[] MetricKeys = ["purity", "nmi", "qe", "te", "recon_mse", "accuracy"];

    [Fact]
    public void Train_should_write_the_run_directory_and_say_where_everything_is()
    {
        Assert.True(run.Train.ExitCode == 0, run.Train.Error + run.Train.Out);
        Assert.Empty(run.Train.Error);
        foreach (var file in new[] { "config.json", "metrics.jsonl", "final-metrics.json", "prototypes.png", "map-labels.png", "umatrix.png", "hitmap.png", "component-planes.png" })
        {
            Assert.True(File.Exists(Path.Combine(run.RunDirectory, file)), file);
            Assert.Contains($"  {file}", run.Train.Out);
        }
        Assert.True(File.Exists(run.FinalCheckpoint));
        Assert.Contains("  checkpoints/", run.Train.Out);
        Assert.Contains($"results in {run.RunDirectory}", run.Train.Out);
        Assert.Contains("final metrics: purity ", run.Train.Out);
    }

    [Fact]
    public void Train_should_run_with_flags_over_the_config_file_and_log_that_configuration()
    {
        var used = DnmConfig.FromJson(File.ReadAllText(Path.Combine(run.RunDirectory, "config.json")), "config.json");
        Assert.Equal(2, used.Epochs);          // flag over file
        Assert.Equal(3UL, used.Seed);          // file over default
        Assert.Equal(128, used.EvalLimit);
        Assert.Equal("4x4", used.Map);
        Assert.Equal(run.RunDirectory, used.Out);
        Assert.Contains(used.ToJson(), run.Train.Out);
    }

    [Fact]
    public void Train_should_log_plain_progress_lines_when_stdout_is_not_a_terminal()
    {
        var log = run.Train.Out;
        Assert.DoesNotContain('\r', log);
        foreach (var expected in new[] { "phase pretrain: 1 epochs x 4 steps", "phase som-pretrain: 50 iterations", "phase joint: 2 epochs x 4 steps",
                     "joint epoch 2/2 step 4/4 | ", " samples/s | ETA ", " | kl ", "evaluation (joint epoch 1", "checkpoint ", "final.ckpt" })
            Assert.Contains(expected, log);
    }

    [Fact]
    public void Eval_should_print_the_metrics_as_json_and_reproduce_the_final_metrics()
    {
        var result = Cli.Run("eval", "--checkpoint", run.FinalCheckpoint, "--dataset", run.Dataset, "--device", "cpu");

        Assert.True(result.ExitCode == 0, result.Error);
        using var printed = JsonDocument.Parse(result.Out);
        Assert.Equal(MetricKeys, printed.RootElement.EnumerateObject().Select(p => p.Name));
        // Same weights, same data, same batches: the checkpoint's evaluation equals the run's final one.
        using var final = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.RunDirectory, "final-metrics.json")));
        foreach (var key in MetricKeys)
            Assert.Equal(final.RootElement.GetProperty(key).GetDouble(), printed.RootElement.GetProperty(key).GetDouble());
    }

    [Fact]
    public void Map_should_write_placements_and_pictures_for_the_checkpoint()
    {
        var outDir = run.Directory.File("map");
        var result = Cli.Run("map", "--checkpoint", run.FinalCheckpoint, "--dataset", run.Dataset, "--out", outDir, "--limit", "100", "--device", "cpu");

        Assert.True(result.ExitCode == 0, result.Error);
        var csv = File.ReadAllLines(Path.Combine(outDir, "placements.csv"));
        Assert.Equal("index,key,label,class,row,col,distance", csv[0]);
        Assert.Equal(101, csv.Length);
        // The run's evaluation split of a single-split IDX set is its training samples: keys are their indices.
        Assert.Matches(@"^0,[0-9]+,[0-3],[0-3],[0-3],[0-3],[0-9.E-]+$", csv[1]);
        foreach (var picture in new[] { "prototypes.png", "map-labels.png", "umatrix.png" })
        {
            Assert.True(new FileInfo(Path.Combine(outDir, picture)).Length > 0, picture);
            Assert.Contains(picture, result.Out);
        }
    }

    [Fact]
    public void Eval_should_refuse_images_of_another_shape_with_exit_3()
    {
        var other = run.Directory.File("small");
        Directory.CreateDirectory(other);
        var result = Cli.Run("eval", "--checkpoint", run.FinalCheckpoint, "--dataset", SyntheticIdx.Spec(other, count: 32, size: 10), "--device", "cpu");

        Assert.Equal(3, result.ExitCode);
        var line = Assert.Single(result.ErrorLines, l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("1x12x12", line);
        Assert.Contains("1x10x10", line);
        Assert.Empty(result.Out);
    }

    [Fact]
    public void An_interrupted_run_should_exit_130_and_resume_from_its_last_checkpoint()
    {
        var outDir = run.Directory.File("interrupted");
        using var cancel = new CancellationTokenSource();
        // Stop as soon as the first checkpoint is reported, as Ctrl+C would at that moment.
        var stdout = new CancelOnLine("checkpoint ", cancel);
        var stderr = new StringWriter();
        var code = DnmCli.Run(["train", "--dataset", run.Dataset, "--out", outDir, .. TrainedRunFixture.TinyRun],
            Cli.Context(stdout, stderr, cancel.Token));

        Assert.Equal(130, code);
        Assert.Contains($"dnm train --out {outDir} --resume", stderr.ToString());
        Assert.False(File.Exists(Path.Combine(outDir, "final-metrics.json")));

        var resumed = Cli.Run("train", "--out", outDir, "--resume", "--epochs", "5");
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        // 4 pre-training steps and checkpoint-every 500: the first checkpoint is the end of SOM pre-training (no epoch-end ones).
        Assert.Contains("resuming from joint epoch 0, global step 4", resumed.Out);
        Assert.Contains("--epochs ignored", resumed.Out);
        Assert.True(File.Exists(Path.Combine(outDir, "final-metrics.json")));
    }

    [Fact]
    public void A_run_stopped_by_SIGTERM_should_checkpoint_its_step_exit_0_and_resume_there()
    {
        var outDir = run.Directory.File("terminated");
        using var cancel = new CancellationTokenSource();
        // SIGTERM during the first step: the step completes, its checkpoint is written, the process exits 0.
        var stdout = new CancelOnLine("step 1/", cancel);
        var stderr = new StringWriter();
        var code = DnmCli.Run(["train", "--dataset", run.Dataset, "--out", outDir, .. TrainedRunFixture.TinyRun],
            Cli.Context(stdout, stderr, cancel.Token) with { Terminated = () => true });

        Assert.True(code == 0, stderr.ToString());
        var checkpoint = Path.Combine(outDir, "checkpoints", "step-000000001.ckpt");
        Assert.Contains($"stopped on SIGTERM: training stopped at global step 1; the last checkpoint is {checkpoint}", stderr.ToString());
        Assert.True(File.Exists(checkpoint));

        var resumed = Cli.Run("train", "--out", outDir, "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Contains("resuming from pretrain epoch 0, global step 1", resumed.Out);
    }

    /// <summary>Captures output and cancels when a line containing a marker is written.</summary>
    private sealed class CancelOnLine(string marker, CancellationTokenSource cancel) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(marker, StringComparison.Ordinal) == true) cancel.Cancel();
        }
    }
}
