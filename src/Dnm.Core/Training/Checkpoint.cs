using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using Dnm.Core.Config;
using Dnm.Core.Data;

namespace Dnm.Core.Training;

/// <summary>A named float32 tensor in host memory.</summary>
public sealed record NamedArray(string Name, long[] Shape, float[] Data);

/// <summary>
/// Everything needed to continue a run bit for bit: the config, the run state, the image shape and
/// the tensors (θ, φ, Adam moments, W). On disk:
/// <code>"DNMCKPT1" | u32 json length | json | float32 data of each tensor in order | SHA-256 of all before</code>
/// Written to a temporary file and renamed, so a crash never leaves a half-written checkpoint.
/// </summary>
public sealed record Checkpoint(DnmConfig Config, RunState State, ImageShape Shape, long AdamSteps, IReadOnlyList<NamedArray> Tensors)
{
    private static readonly byte[] Magic = "DNMCKPT1"u8.ToArray();

    private sealed record Header(DnmConfig Config, RunState State, ImageShape Shape, long AdamSteps, List<TensorInfo> Tensors);
    private sealed record TensorInfo(string Name, long[] Shape);

    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                void Write(ReadOnlySpan<byte> bytes) { file.Write(bytes); hash.AppendData(bytes); }
                var header = new Header(Config, State, Shape, AdamSteps, Tensors.Select(t => new TensorInfo(t.Name, t.Shape)).ToList());
                var json = JsonSerializer.SerializeToUtf8Bytes(header, DnmConfig.Json);
                Span<byte> len = stackalloc byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)json.Length);
                Write(Magic);
                Write(len);
                Write(json);
                foreach (var t in Tensors)
                {
                    if (t.Data.LongLength != t.Shape.Aggregate(1L, (a, b) => a * b))
                        throw new InvalidOperationException($"tensor {t.Name}: data length does not match its shape");
                    Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan()));
                }
                file.Write(hash.GetHashAndReset());
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    public static Checkpoint Load(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"checkpoint {path} does not exist");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length + 4 + 32 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new CheckpointException($"{path} is not a Dnm checkpoint (bad magic)");
        var body = bytes.AsSpan(0, bytes.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            throw new CheckpointException($"checkpoint {path} is corrupt (SHA-256 mismatch); use an earlier checkpoint from the same folder");
        var jsonLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(Magic.Length));
        Header header;
        try
        {
            header = JsonSerializer.Deserialize<Header>(bytes.AsSpan(Magic.Length + 4, jsonLength), DnmConfig.Json)
                     ?? throw new CheckpointException($"checkpoint {path} has an empty header");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"checkpoint {path} has an unreadable header ({e.Message}); it was written by an incompatible Dnm version");
        }
        var offset = Magic.Length + 4 + jsonLength;
        var tensors = new List<NamedArray>(header.Tensors.Count);
        foreach (var info in header.Tensors)
        {
            var n = info.Shape.Aggregate(1L, (a, b) => a * b);
            if (offset + n * 4 > body.Length) throw new CheckpointException($"checkpoint {path} is truncated at tensor {info.Name}");
            var data = new float[n];
            body.Slice(offset, (int)(n * 4)).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
            offset += (int)(n * 4);
            tensors.Add(new NamedArray(info.Name, info.Shape, data));
        }
        if (offset != body.Length) throw new CheckpointException($"checkpoint {path} has {body.Length - offset} unexpected trailing bytes");
        return new Checkpoint(header.Config, header.State, header.Shape, header.AdamSteps, tensors);
    }

    /// <summary>The newest checkpoint in a run's checkpoints folder, or null.</summary>
    public static string? Latest(string checkpointDir) => InOrder(checkpointDir).LastOrDefault();

    /// <summary>The step checkpoints of a folder, oldest first (by global step, then position within SOM pre-training).</summary>
    public static IReadOnlyList<string> InOrder(string checkpointDir) =>
        Directory.Exists(checkpointDir)
            ? Directory.GetFiles(checkpointDir, "step-*.ckpt").Select(f => (Key: OrderOf(f), Path: f)).Where(f => f.Key is not null)
                .OrderBy(f => f.Key!.Value).ThenBy(f => f.Path, StringComparer.Ordinal).Select(f => f.Path).ToArray()
            : [];

    /// <summary>
    /// The file name of a checkpoint of <paramref name="state"/>: <c>step-G.ckpt</c> for a training step,
    /// <c>step-G-som-N.ckpt</c> within SOM pre-training (which does not advance G) and <c>step-G-som-done.ckpt</c> after it,
    /// so no two states of a run share a name and no checkpoint is ever rewritten.
    /// </summary>
    public static string FileName(RunState state) => state switch
    {
        { Phase: TrainingPhase.SomPretrain } => $"step-{state.GlobalStep:D9}-som-{state.PhaseStep:D9}.ckpt",
        { Phase: TrainingPhase.Joint, PhaseStep: 0, Epoch: 0, StepInEpoch: 0 } => $"step-{state.GlobalStep:D9}-som-done.ckpt",
        _ => FileName(state.GlobalStep),
    };

    public static string FileName(long globalStep) => $"step-{globalStep:D9}.ckpt";

    /// <summary>(global step, then 0 for a training step, 1 + N within SOM pre-training, last after it); null for another name.</summary>
    private static (long Step, long Within)? OrderOf(string path)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        var parts = name.Split('-');
        if (parts.Length < 2 || parts[0] != "step" || !long.TryParse(parts[1], System.Globalization.NumberStyles.None, null, out var step)) return null;
        if (parts.Length == 2) return (step, 0);
        if (parts.Length == 4 && parts[2] == "som" && long.TryParse(parts[3], System.Globalization.NumberStyles.None, null, out var n)) return (step, 1 + n);
        if (parts.Length == 4 && parts[2] == "som" && parts[3] == "done") return (step, long.MaxValue);
        return null;
    }
}

/// <summary>A missing, corrupt or incompatible checkpoint. The CLI reports it with exit code 3.</summary>
public sealed class CheckpointException(string message) : Exception(message);
