using System.Text.Json;
using Dnm.Core.Config;
using Dnm.Core.Evaluation;

namespace Dnm.Core.Training;

/// <summary>
/// The files of a run (--out): config.json, checkpoints/, metrics.jsonl, final-metrics.json and the
/// pictures. Whole files are written to a temporary name and renamed; metrics.jsonl only grows.
/// </summary>
public sealed class RunDirectory
{
    public RunDirectory(string root)
    {
        Root = Path.GetFullPath(root);
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Checkpoints);
        // A process killed in the middle of a write leaves its temporary file (".step-….ckpt.….tmp"): on a disk that filled up,
        // those are what would keep the next checkpoint from fitting.
        foreach (var stale in Directory.GetFiles(Checkpoints, ".*.tmp")) File.Delete(stale);
    }

    /// <summary>
    /// Wraps the stream each checkpoint is written through (<see cref="Checkpoint.Save"/>): none by default. A test seam that
    /// injects write failures (ENOSPC, EIO) into the real temporary-file path.
    /// </summary>
    public Func<Stream, Stream>? CheckpointStream { get; init; }

    public string Root { get; }
    public string Checkpoints => Path.Combine(Root, "checkpoints");
    public string ConfigJson => Path.Combine(Root, "config.json");
    public string MetricsJsonl => Path.Combine(Root, "metrics.jsonl");
    public string FinalMetricsJson => Path.Combine(Root, "final-metrics.json");
    public string PrototypesPng => Path.Combine(Root, MapPictures.Prototypes);
    public string LabelMapPng => Path.Combine(Root, MapPictures.LabelMap);
    public string UMatrixPng => Path.Combine(Root, MapPictures.UMatrix);
    public string HitMapPng => Path.Combine(Root, MapPictures.HitMap);
    public string ComponentPlanesPng => Path.Combine(Root, MapPictures.ComponentPlanes);
    public string FinalCheckpoint => Path.Combine(Checkpoints, "final.ckpt");

    public void WriteConfig(DnmConfig config) => WriteAtomically(ConfigJson, config.ToJson());

    public void AppendMetrics(object line) =>
        File.AppendAllText(MetricsJsonl, JsonSerializer.Serialize(line, LineJson) + "\n");

    public void WriteFinalMetrics(object metrics) =>
        WriteAtomically(FinalMetricsJson, JsonSerializer.Serialize(metrics, new JsonSerializerOptions(LineJson) { WriteIndented = true }));

    /// <summary>
    /// Keeps the newest <paramref name="keep"/> step checkpoints and deletes older ones, except <paramref name="lastGood"/>:
    /// the newest one known to be good (read back with a matching checksum, finite), which a run can always go back to
    /// even when the newer ones are damaged.
    /// </summary>
    public void PruneCheckpoints(int keep, string? lastGood = null)
    {
        var files = Checkpoint.InOrder(Checkpoints);
        var good = lastGood is null ? null : Path.GetFullPath(lastGood);
        foreach (var f in files.Take(Math.Max(0, files.Count - keep)))
            if (Path.GetFullPath(f) != good)
                File.Delete(f);
    }

    public static void WriteAtomically(string path, string text)
    {
        using var file = new IO.AtomicFileWriter(path);
        file.Stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
        file.Commit();
    }

    private static readonly JsonSerializerOptions LineJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}
