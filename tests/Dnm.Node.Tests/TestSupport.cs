using System.Buffers.Binary;

namespace Dnm.Node.Tests;

/// <summary>What one in-process `dnm` invocation printed and returned.</summary>
public sealed record CliResult(int ExitCode, string Out, string Error)
{
    public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}

public static class Cli
{
    /// <summary>Runs `dnm args` in this process, with a non-interactive display (log lines), as CI would see it.</summary>
    public static CliResult Run(params string[] args) => Run(CancellationToken.None, args);

    public static CliResult Run(CancellationToken cancel, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = DnmCli.Run(args, Context(stdout, stderr, cancel));
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// A context for in-process runs. They serve no metrics (as if DNM_METRICS_PORT=0): specs run in
    /// parallel, beside other checkouts' tests, and would otherwise all ask for port 9464.
    /// </summary>
    public static CliContext Context(TextWriter stdout, TextWriter stderr, CancellationToken cancel = default) => new(stdout, stderr)
    {
        Cancel = cancel,
        Environment = name => name == "DNM_METRICS_PORT" ? "0" : Environment.GetEnvironmentVariable(name),
    };
}

/// <summary>A fresh directory under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class ScratchDirectory : IDisposable
{
    public ScratchDirectory() => Path = Directory.CreateTempSubdirectory("dnm-cli-test-").FullName;

    public string Path { get; }

    public string File(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>
/// A tiny labelled image set as IDX files: 12x12 images of a soft blob in one of four places, the
/// place being the label. Small enough to train in a second, structured enough to be a real dataset.
/// </summary>
public static class SyntheticIdx
{
    public static string Spec(string directory, int count = 256, int size = 12)
    {
        var rng = new Random(7);
        var pixels = new byte[count * size * size];
        var labels = new byte[count];
        double[][] centres = [[0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]];
        for (var i = 0; i < count; i++)
        {
            var label = i % 4;
            labels[i] = (byte)label;
            var cy = centres[label][0] * (size - 1) + rng.NextDouble() - 0.5;
            var cx = centres[label][1] * (size - 1) + rng.NextDouble() - 0.5;
            for (var y = 0; y < size; y++)
                for (var x = 0; x < size; x++)
                {
                    var d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
                    pixels[(i * size + y) * size + x] = (byte)(255 * Math.Exp(-d2 / (0.02 * size * size)));
                }
        }
        var images = System.IO.Path.Combine(directory, $"blobs{size}-images.idx");
        var labelFile = System.IO.Path.Combine(directory, $"blobs{size}-labels.idx");
        File.WriteAllBytes(images, Idx(0x803, [count, size, size], pixels));
        File.WriteAllBytes(labelFile, Idx(0x801, [count], labels));
        return $"idx:{images},{labelFile}";
    }

    private static byte[] Idx(int magic, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (var d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }
}

/// <summary>A clock that moves only when told to, so time-based output is deterministic.</summary>
public sealed class ManualClock : TimeProvider
{
    private long ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => ticks;

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero) + TimeSpan.FromTicks(ticks);

    public void Advance(TimeSpan by) => ticks += by.Ticks;
}

/// <summary>Specs that run torch share native process state (threads, seeds); they run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class TorchCollection
{
    public const string Name = "torch";
}
