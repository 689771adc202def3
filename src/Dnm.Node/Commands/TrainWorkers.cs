using System.CommandLine;
using Dnm.Cluster;
using Dnm.Cluster.Hosting;
using Dnm.Core.Config;
using Dnm.Core.Training;

namespace Dnm.Node.Commands;

/// <summary>
/// `dnm train --workers N`: the same run, data-parallel over N workers in this process. The coordinator and
/// the workers talk through the cluster's actors and TCP data plane over loopback, exactly as separate
/// `dnm node` processes would; the result equals the single-process run up to float rounding.
/// </summary>
public static class TrainWorkers
{
    public static Option<int> CreateOption() => new("--workers")
    {
        Description = "Train data-parallel with N workers in this process, through the cluster's actors and data plane [default: single process]",
        HelpName = "N",
    };

    /// <summary>Problems with --workers, reported before torch starts.</summary>
    public static void Check(int workers, Checkpoint? checkpoint, string? resumePath, DnmConfig config)
    {
        if (workers < 1) throw new ConfigException($"--workers must be at least 1, got {workers}");
        config.Validated();
        if (workers > config.BatchSize)
            throw new ConfigException($"--workers {workers} is more than --batch-size {config.BatchSize}: every worker needs samples");
        // The coordinator continues from the newest checkpoint of its run directory (as after a failover).
        if (checkpoint is not null && !string.IsNullOrEmpty(resumePath)
            && Checkpoint.Latest(Path.Combine(config.Out, "checkpoints")) is var latest
            && (latest is null || Path.GetFullPath(latest) != Path.GetFullPath(resumePath)))
            throw new ConfigException($"with --workers, --resume continues from the newest checkpoint of --out; {resumePath} is not it");
    }

    public static TrainingResult Execute(DnmConfig config, int workers, bool resume, ITrainingObserver observer, ClusterTelemetry telemetry,
        CancellationToken cancel)
    {
        var result = ClusterTraining.RunEmbeddedAsync(config, workers, observer, cancel, resume: resume, telemetry: telemetry).GetAwaiter().GetResult();
        var final = result.Final ?? throw new ClusterRunException("the run ended without a final evaluation");
        return new TrainingResult(result.RunDirectory, final, result.GlobalSteps, result.Duration);
    }
}
