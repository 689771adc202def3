using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.IO;
using Dnm.Core.Model;

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

    /// <summary>
    /// Writes the checkpoint to a temporary file beside <paramref name="path"/> and renames it over it (<see cref="AtomicFileWriter"/>).
    /// A failed write (ENOSPC, EIO: an <see cref="IOException"/>) removes the temporary file and leaves <paramref name="path"/> as it was.
    /// </summary>
    /// <param name="through">Wraps the temporary file's stream (a test seam that injects write failures); none by default.</param>
    public void Save(string path, Func<Stream, Stream>? through = null)
    {
        using var writer = new AtomicFileWriter(path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var file = through is null ? writer.Stream : through(writer.Stream);
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
        file.Flush();
        writer.Commit();
    }

    /// <summary>The name of the first tensor that holds a NaN or an infinity, or null: such a checkpoint is no state to go back to.</summary>
    public string? NonFiniteTensor()
    {
        foreach (var t in Tensors)
            foreach (var x in t.Data)
                if (!float.IsFinite(x)) return t.Name;
        return null;
    }

    /// <summary>Whether the file at <paramref name="path"/> is a checkpoint whose SHA-256 matches (read back, nothing allocated).</summary>
    public static bool Verifies(string path)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            return file.Length >= Magic.Length + 4 + HashBytes && HashMatches(file, file.Length);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// The newest checkpoint of <paramref name="checkpointDir"/> that loads (<see cref="Load"/>: intact and valid) and holds only
    /// finite values, or null when the folder has none at all. Each newer one that fails is named to <paramref name="warn"/>,
    /// and skipped. A folder whose checkpoints all fail is a <see cref="CheckpointException"/>: starting over would overwrite them.
    /// </summary>
    public static (string Path, Checkpoint Checkpoint)? LatestUsable(string checkpointDir, Action<string> warn)
    {
        var all = InOrder(checkpointDir);
        var rejected = new List<string>();
        foreach (var path in all.Reverse())
        {
            string problem;
            try
            {
                var checkpoint = Load(path);
                if (checkpoint.NonFiniteTensor() is not { } tensor)
                {
                    if (rejected.Count > 0) warn($"warning: resuming from {Path.GetFileName(path)}, the newest checkpoint that verifies");
                    return (path, checkpoint);
                }
                problem = $"tensor {tensor} holds NaN or infinity";
            }
            catch (CheckpointException e)
            {
                problem = e.Message;
            }
            rejected.Add(Path.GetFileName(path));
            warn($"warning: skipping checkpoint {Path.GetFileName(path)}: {problem}");
        }
        return all.Count == 0
            ? null
            : throw new CheckpointException($"none of the {all.Count} checkpoints in {checkpointDir} verifies ({string.Join(", ", rejected)}); " +
                                            "move them away to start the run over");
    }

    /// <summary>Bytes of the JSON header a reader accepts: a real one (config, state, tensor list) is a few KB.</summary>
    public const int MaxHeaderBytes = 1 << 20;
    private const int HashBytes = 32;

    /// <summary>
    /// Reads and checks a checkpoint. A missing, corrupt (SHA-256 mismatch) or invalid file is a <see cref="CheckpointException"/>.
    /// Invalid means a file whose hash is right but whose content is not one a run writes: a config that fails validation
    /// or exceeds <see cref="DnmConfig.Limits"/>, an image shape out of range, or tensors whose count, names or shapes differ
    /// from what the config implies (<see cref="EngineState.Layout"/>). All of that is checked before any tensor is allocated,
    /// so what a file can make a reader allocate is bounded by the file's size and the config's limits.
    /// </summary>
    public static Checkpoint Load(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"checkpoint {path} does not exist");
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            var length = file.Length;
            Span<byte> prefix = stackalloc byte[Magic.Length + 4];
            if (length < prefix.Length + HashBytes) throw new CheckpointException($"{path} is not a Dnm checkpoint (too short)");
            file.ReadExactly(prefix);
            if (!prefix[..Magic.Length].SequenceEqual(Magic)) throw new CheckpointException($"{path} is not a Dnm checkpoint (bad magic)");
            // Integrity first, in a pass of its own: a damaged file is "corrupt", and only an intact one is judged on its content.
            if (!HashMatches(file, length))
                throw new CheckpointException($"checkpoint {path} is corrupt (SHA-256 mismatch); use an earlier checkpoint from the same folder");
            var jsonLength = BinaryPrimitives.ReadUInt32LittleEndian(prefix[Magic.Length..]);
            var payload = length - prefix.Length - HashBytes;
            if (jsonLength > MaxHeaderBytes || jsonLength > payload)
                throw Invalid(path, $"its header declares {jsonLength} bytes (the file has {payload}, a reader accepts at most {MaxHeaderBytes})");
            var json = new byte[jsonLength];
            file.Position = prefix.Length;
            file.ReadExactly(json);
            Header? header;
            try
            {
                var node = JsonNode.Parse(json);
                // A checkpoint older than a key ran with that key's default of the time, which may differ from today's.
                if (node?["config"] is JsonObject config) DnmConfig.FillEarlierDefaults(config);
                header = node.Deserialize<Header>(DnmConfig.Json);
            }
            catch (JsonException e)
            {
                throw Invalid(path, $"unreadable header ({e.Message}); was it written by an incompatible Dnm version?");
            }
            if (Problem(header, payload - jsonLength) is { } problem) throw Invalid(path, problem);
            var tensors = new List<NamedArray>(header!.Tensors.Count);
            foreach (var info in header.Tensors)
            {
                var data = new float[info.Shape.Aggregate(1L, (a, b) => a * b)];
                file.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
                tensors.Add(new NamedArray(info.Name, info.Shape, data));
            }
            return new Checkpoint(header.Config, header.State, header.Shape, header.AdamSteps, tensors);
        }
        catch (IOException e)
        {
            throw new CheckpointException($"checkpoint {path} could not be read: {e.Message}");
        }
    }

    private static CheckpointException Invalid(string path, string problem) => new($"invalid checkpoint {path}: {problem}");

    /// <summary>Whether the last 32 bytes are the SHA-256 of all before them.</summary>
    private static bool HashMatches(FileStream file, long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        file.Position = 0;
        for (var left = length - HashBytes; left > 0;)
        {
            var n = file.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0) throw new EndOfStreamException();
            hash.AppendData(buffer, 0, n);
            left -= n;
        }
        Span<byte> stored = stackalloc byte[HashBytes];
        file.ReadExactly(stored);
        return hash.GetHashAndReset().AsSpan().SequenceEqual(stored);
    }

    /// <summary>
    /// What makes a parsed header one that no run writes, or null: see <see cref="Load"/>. <paramref name="dataBytes"/>:
    /// the bytes after the header, which the tensors must fill exactly.
    /// </summary>
    private static string? Problem(Header? header, long dataBytes)
    {
        if (header is null) return "its header is empty";
        if (header.Config is null || header.State is null || header.Shape is null || header.Tensors is null)
            return "its header lacks the config, the run state, the image shape or the tensor list";
        if (header.Config.Problems() is { Count: > 0 } problems) return $"its config is not valid: {string.Join("; ", problems)}";
        if (ModelLayout.ShapeProblem(header.Shape) is { } shape) return shape;
        if (ModelLayout.Problem(header.Config, header.Shape) is { } model) return model;
        var state = header.State;
        if (!Enum.IsDefined(state.Phase) || state.Epoch < 0 || state.StepInEpoch < 0 || state.PhaseStep < 0 || state.GlobalStep < 0 || header.AdamSteps < 0)
            return "its run state has a negative counter or an unknown phase";

        var expected = EngineState.Layout(header.Config, header.Shape);
        var tensors = header.Tensors;
        // After the config's tensors: the nodes' class counts (semi-supervised), then the smoothed targets, each where its run has them.
        var classes = header.Config.SemiSupervised && tensors.Count > expected.Count ? tensors[expected.Count] : null;
        if (classes is not null
            && (classes.Name != NodeClasses.CheckpointName || classes.Shape is not [var nodes, var classCount]
                || nodes != (long)header.Config.MapRows * header.Config.MapCols || classCount is <= 0 or > ushort.MaxValue))
            return $"tensor {expected.Count} is not the nodes' class counts ({NodeClasses.CheckpointName}: nodes x classes)";
        var known = expected.Count + (classes is null ? 0 : 1);
        var targets = tensors.Count == known + 1 ? tensors[^1] : null;
        if (tensors.Count != known && targets is null)
            return $"it holds {tensors.Count} tensors where its config implies {known}";
        for (var i = 0; i < expected.Count; i++)
        {
            var (name, want) = (expected[i].Name, expected[i].Shape);
            if (tensors[i] is not { Name: { } got, Shape: { } shape2 }) return $"tensor {i} has no name or shape";
            if (got != name) return $"tensor {i} is '{got}' where its config implies '{name}'";
            if (!shape2.SequenceEqual(want))
                return $"tensor '{name}' has shape [{string.Join(",", shape2)}] where its config implies [{string.Join(",", want)}]";
        }
        if (targets is not null
            && (targets.Name != SmoothTargets.CheckpointName || targets.Shape is not [var rows, var latent]
                || latent != header.Config.Latent || rows <= 0 || rows > int.MaxValue / latent))
            return $"its last tensor is not the smoothed targets ({SmoothTargets.CheckpointName}: samples x {header.Config.Latent})";

        // Every shape is now bounded (the config's limits, or rows·latent < 2^31), so the sum cannot overflow.
        var floats = tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        return floats * sizeof(float) == dataBytes ? null : $"its tensors need {floats * sizeof(float)} bytes but the file holds {dataBytes}";
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
