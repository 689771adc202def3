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

    /// <summary>
    /// Appends one line to metrics.jsonl, whole or not at all: a write that fails (a full disk) cuts the file back to where it
    /// ended, so no half line is left for a reader, and throws the <see cref="IOException"/>.
    /// </summary>
    public void AppendMetrics(object line)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(line, LineJson) + "\n");
        // Unbuffered: the bytes reach the kernel in Write, so a full disk fails there and not again on Dispose.
        using var file = new FileStream(MetricsJsonl, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, bufferSize: 0);
        var end = file.Seek(0, SeekOrigin.End);
        try
        {
            file.Write(bytes);
        }
        catch (IOException)
        {
            try { file.SetLength(end); }
            catch (IOException) { } // the write's exception is the one to report
            throw;
        }
    }

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
