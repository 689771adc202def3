using System.Globalization;
using Dnm.Core.Evaluation;
using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>The wording of progress output, shared by the live display and the log lines so both say the same thing.</summary>
public static class ProgressText
{
    public static string Phase(TrainingPhase phase) => phase.Name();

    /// <summary>One step's status, e.g. "joint epoch 3/10 step 120/235 | 1843 samples/s | ETA 0:58 | kl 0.0101 recon 0.031 l2 1E-05 | σ 4.21 η 0.262".</summary>
    public static string Status(StepReport r, ThroughputMeter meter)
    {
        var where = r.Phase == TrainingPhase.SomPretrain
            ? $"iteration {meter.Position}/{meter.TotalSteps}"
            : $"epoch {r.Epoch + 1}/{r.Epochs} step {r.StepInEpoch}/{r.StepsPerEpoch}";
        // Most useful first: a narrow terminal cuts the live line from the right.
        var parts = new List<string> { $"{Phase(r.Phase)} {where}", Rate(meter.SamplesPerSecond), $"ETA {Duration(meter.Remaining)}" };
        var loss = r.Phase switch
        {
            TrainingPhase.Pretrain => $"recon {Num(r.Loss.Reconstruction)} l2 {Num(r.Loss.L2)}",
            TrainingPhase.Joint => $"kl {Num(r.Loss.Kl)} recon {Num(r.Loss.Reconstruction)} l2 {Num(r.Loss.L2)}"
                + (r.Loss.Smoothing is { } smooth ? $" smooth {Num(smooth)}" : ""),
            _ => null,
        };
        if (loss is not null) parts.Add(loss);
        if (!double.IsNaN(r.Sigma)) parts.Add($"σ {Num(r.Sigma)} η {Num(r.Eta)}");
        return string.Join(" | ", parts);
    }

    public static string PhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch, long totalSteps) => phase == TrainingPhase.SomPretrain
        ? $"phase {Phase(phase)}: {totalSteps} iterations"
        : $"phase {Phase(phase)}: {epochs} epochs x {stepsPerEpoch} steps";

    public static string Evaluation(EvaluationReport r) =>
        $"evaluation ({Phase(r.Phase)}{(r.Phase == TrainingPhase.Done ? "" : $" epoch {r.Epoch}")}, step {r.GlobalStep}, {r.Samples} samples, " +
        $"{r.Duration.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s): {Quality(r.Quality)}";

    public static string Quality(MapQuality q) =>
        $"purity {Num(q.Purity)} nmi {Num(q.Nmi)} qe {Num(q.Qe)} te {Num(q.Te)} recon_mse {Num(q.ReconMse)}" +
        (q.Accuracy is null ? "" : $" accuracy {Num(q.Accuracy)}");

    public static string Checkpoint(string path, long bytes, TimeSpan duration) =>
        $"checkpoint {path} ({Bytes(bytes)}, {duration.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms)";

    public static string Rate(double? samplesPerSecond) =>
        samplesPerSecond is { } s ? $"{s.ToString("0", CultureInfo.InvariantCulture)} samples/s" : "- samples/s";

    /// <summary>4 significant digits: losses range from 1e-6 (L2) to tens (KL).</summary>
    public static string Num(double? value) => value is { } v ? v.ToString("G4", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>m:ss below an hour, h:mm:ss above; "-" when unknown.</summary>
    public static string Duration(TimeSpan? span)
    {
        if (span is not { } t) return "-";
        if (t < TimeSpan.Zero) t = TimeSpan.Zero;
        return t.TotalHours >= 1
            ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}"
            : $"{t.Minutes}:{t.Seconds:D2}";
    }

    /// <summary>The prefix of a log line: time since start as [hh:mm:ss].</summary>
    public static string Stamp(TimeSpan elapsed) => $"[{(int)elapsed.TotalHours:D2}:{elapsed.Minutes:D2}:{elapsed.Seconds:D2}]";

    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{(bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture)} GB",
        >= 1L << 20 => $"{(bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture)} MB",
        >= 1L << 10 => $"{(bytes / (double)(1L << 10)).ToString("0.0", CultureInfo.InvariantCulture)} kB",
        _ => $"{bytes} B",
    };
}
