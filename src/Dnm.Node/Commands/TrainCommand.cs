using System.CommandLine;
using Dnm.Core.Config;
using Dnm.Core.Export;
using Dnm.Core.Runtime;
using Dnm.Core.Training;
using Dnm.Core.Telemetry;
using Dnm.Node.Progress;
using Dnm.Node.Telemetry;

namespace Dnm.Node.Commands;

/// <summary>`dnm train`: resolve the configuration, start torch, run <see cref="TrainingRun"/>, say where the results are.</summary>
public static class TrainCommand
{
    /// <summary>On resume the checkpoint's configuration is used; only these keys still come from the command line.</summary>
    private static readonly string[] ResumeKeys = ["device", "threads", "out"];

    public static Command Create(CliContext context)
    {
        var flags = new ConfigFlags();
        var telemetryFlags = new TelemetryFlags();
        var configFile = new Option<string>("--config")
        {
            Description = "JSON file of configuration keys (named like the flags, e.g. \"batch-size\"); flags on the command line override it",
            HelpName = "file.json",
        };
        var resume = new Option<string>("--resume")
        {
            Description = "Continue from a checkpoint; without a path, from the newest step-*.ckpt in <out>/checkpoints",
            Arity = ArgumentArity.ZeroOrOne,
            HelpName = "path",
        };
        var workers = TrainWorkers.CreateOption();
        var command = new Command("train", "Train a Deep Neural Map; writes config.json, checkpoints/, metrics.jsonl, final-metrics.json and pictures to --out");
        foreach (var option in flags.Options) command.Add(option);
        command.Add(configFile);
        command.Add(resume);
        foreach (var option in telemetryFlags.Options) command.Add(option);
        command.Add(workers);
        command.SetAction(parsed =>
        {
            var resolved = flags.Resolve(parsed, parsed.GetValue(configFile));
            var resumeFrom = parsed.GetResult(resume) is null ? null : new ResumeRequest(parsed.GetValue(resume));
            return Run(context, resolved, resumeFrom, telemetryFlags.Resolve(parsed, context.Environment),
                parsed.GetResult(workers) is null ? null : parsed.GetValue(workers));
        });
        return command;
    }

    /// <summary>--resume, with the checkpoint path if one was given.</summary>
    private sealed record ResumeRequest(string? Path);

    private static int Run(CliContext context, ResolvedConfig resolved, ResumeRequest? resume, TelemetryOptions telemetryOptions, int? workers)
    {
        var config = resolved.Config;
        if (!resolved.GivenKeys.Contains("out"))
            config = config with { Out = DefaultOut(config, resume, context.Clock) };
        // Bad flags are reported before anything slow happens (checkpoint loading, torch start-up).
        config.Validated();

        var (checkpointPath, checkpoint) = resume is null ? (null, null) : LoadCheckpoint(resume, config, context);
        if (workers is not null) TrainWorkers.Check(workers.Value, checkpoint, resume?.Path, config);
        // The same merge TrainingRun does, so that what is logged is what runs.
        var effective = checkpoint is null
            ? config
            : checkpoint.Config with { Device = config.Device, Threads = config.Threads, Out = config.Out };
        effective.Validated();
        // A warm start's file is checked against the model flags before torch starts (its tensors once the data is open).
        if (checkpoint is null && effective.InitFrom is { } initFrom)
            WarmStart.CheckConfig(effective, ExportedModel.ReadConfig(initFrom), effective.InitParts, initFrom);

        context.Out.WriteLine($"dnm train: run directory {Path.GetFullPath(effective.Out)}");
        if (checkpoint is not null)
        {
            context.Out.WriteLine($"resuming from {ProgressText.Phase(checkpoint.State.Phase)} epoch {checkpoint.State.Epoch}, global step {checkpoint.State.GlobalStep}");
            var ignored = resolved.GivenKeys.Except(ResumeKeys).Order(StringComparer.Ordinal).ToArray();
            if (ignored.Length > 0)
                context.Out.WriteLine($"note: the checkpoint's configuration is used; {string.Join(", ", ignored.Select(k => "--" + k))} ignored (only --device, --threads and --out apply on resume)");
        }
        context.Out.WriteLine("configuration (defaults < config file < flags):");
        context.Out.WriteLine(effective.ToJson());

        TrainingResult result;
        // One tracker feeds the console and the metrics the same throughput and ETA; it hears each event first.
        var tracker = new ProgressTracker(effective, context.Clock);
        using (var display = TrainingDisplay.For(context, tracker))
        {
            var fetch = new FetchProgressWriter(context.Out, context.Interactive, context.Clock);
            var (device, runtime) = TorchRuntime.Initialize(DeviceSpec.Parse(effective.Device), effective.Threads, display.Line);
            display.Line($"runtime: device {runtime.Device}, {runtime.Threads} threads, oneDNN {(runtime.MkldnnEnabled ? "on" : "off")}");
            // With --workers this process is the coordinator (its metrics say so) and hosts the workers, whose
            // metrics carry their ranks; all are served on the one endpoint.
            var role = workers is null ? TelemetryIdentity.SingleProcessRole : Cluster.Hosting.ClusterTelemetry.CoordinatorRole;
            using var telemetry = NodeTelemetry.Start(telemetryOptions, new TelemetryIdentity(role, 0, runtime.Device),
                worldSize: workers ?? 1, tracker, runId: Guid.NewGuid().ToString("N"), context.Environment, display.Line, context.Error.WriteLine);
            var observer = new CompositeObserver(tracker, display, telemetry.Observer);
            try
            {
                // --workers N: the embedded cluster (coordinator and N workers in this process, same actors and
                // transport as a real cluster).
                result = workers is { } n
                    ? TrainWorkers.Execute(effective, n, checkpoint is not null, observer, telemetry.Cluster(coordinator: true), context.Cancel)
                    : TrainingRun.Execute(effective, device, checkpoint, observer, fetch, context.Cancel, telemetry.Tracer, checkpointPath);
                telemetry.AwaitFinalScrape(display.Line, context.Cancel);
            }
            catch (OperationCanceledException e) when (context.Cancel.IsCancellationRequested)
            {
                fetch.Finish();
                display.Dispose();
                return Interrupted(context, effective.Out, e as RunStoppedException);
            }
            finally
            {
                fetch.Finish();
            }
        }
        PrintResults(context, result);
        return CliErrors.Ok;
    }

    /// <summary>
    /// runs/&lt;dataset&gt;-&lt;time&gt; for a new run. Resuming from a checkpoint inside a run directory
    /// continues in that directory, so a resumed run keeps one metrics.jsonl.
    /// </summary>
    private static string DefaultOut(DnmConfig config, ResumeRequest? resume, TimeProvider clock)
    {
        if (resume is not null)
        {
            if (string.IsNullOrEmpty(resume.Path))
                throw new ConfigException("--resume without a checkpoint path needs --out <run directory> (it resumes from the newest <out>/checkpoints/step-*.ckpt)");
            var folder = Path.GetDirectoryName(Path.GetFullPath(resume.Path));
            if (folder is not null && Path.GetFileName(folder) == "checkpoints" && Path.GetDirectoryName(folder) is { } run)
                return run;
        }
        return RunNames.DefaultOut(config.Dataset, clock.GetLocalNow());
    }

    /// <summary>
    /// The checkpoint --resume names, or without a path the newest of the run directory that verifies (a corrupt newer one
    /// is named on stderr and skipped).
    /// </summary>
    private static (string Path, Checkpoint Checkpoint) LoadCheckpoint(ResumeRequest resume, DnmConfig config, CliContext context)
    {
        if (!string.IsNullOrEmpty(resume.Path)) return (resume.Path, Checkpoint.Load(resume.Path));
        var folder = Path.Combine(config.Out, "checkpoints");
        return Checkpoint.LatestUsable(folder, context.Error.WriteLine)
               ?? throw new CheckpointException($"--resume: no step-*.ckpt in {Path.GetFullPath(folder)}; give a checkpoint path, or the --out of the run to resume");
    }

    /// <summary>
    /// Ctrl+C (exit 130) or SIGTERM (exit 0: a requested stop, as Kubernetes asks a pod): either way the run stopped after
    /// its step and wrote that step's checkpoint (<paramref name="stop"/>), unless it stopped within SOM pre-training or an
    /// evaluation, whose last checkpoint stays.
    /// </summary>
    private static int Interrupted(CliContext context, string outDir, RunStoppedException? stop)
    {
        var latest = stop?.Checkpoint ?? Checkpoint.Latest(Path.Combine(outDir, "checkpoints"));
        var what = context.Terminated() ? "stopped on SIGTERM" : "interrupted";
        context.Error.WriteLine(latest is null
            ? $"{what}: training stopped before its first checkpoint; there is nothing to resume"
            : $"{what}: training stopped{(stop?.GlobalStep is { } step ? $" at global step {step}" : "")}; the last checkpoint is {latest}. " +
              $"Continue with: dnm train --out {outDir} --resume");
        return context.Terminated() ? CliErrors.Ok : CliErrors.Interrupted;
    }

    private static void PrintResults(CliContext context, TrainingResult result)
    {
        var run = new RunDirectory(result.RunDirectory);
        var o = context.Out;
        o.WriteLine($"training finished in {ProgressText.Duration(result.Duration)} ({result.GlobalSteps} steps)");
        o.WriteLine($"results in {run.Root}:");
        (string Path, string Name, string What)[] files =
        [
            (run.ConfigJson, "config.json", "the configuration used"),
            (run.Checkpoints, "checkpoints/", "final.ckpt and the newest step checkpoints (dnm eval / dnm map --checkpoint)"),
            (run.MetricsJsonl, "metrics.jsonl", "evaluations during training, one JSON object per line"),
            (run.FinalMetricsJson, "final-metrics.json", "the final evaluation"),
            (run.PrototypesPng, "prototypes.png", "the decoded prototype of every node"),
            (run.LabelMapPng, "map-labels.png", "the majority label of every node"),
            (run.UMatrixPng, "umatrix.png", "distances between neighbouring prototypes"),
            (run.HitMapPng, "hitmap.png", "how many training samples each node holds"),
            (run.ComponentPlanesPng, "component-planes.png", "each latent dimension of the prototypes across the map"),
        ];
        foreach (var (path, name, what) in files)
            if (File.Exists(path) || Directory.Exists(path))
                o.WriteLine($"  {name,-22}{what}");
        o.WriteLine($"final metrics: {ProgressText.Quality(result.Final)}");
    }
}
