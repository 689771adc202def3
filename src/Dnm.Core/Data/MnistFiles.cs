namespace Dnm.Core.Data;

/// <summary>Paths of the four uncompressed MNIST files, all verified against <see cref="MnistStore.Expected"/>.</summary>
public sealed record MnistFiles(string Directory, string TrainImages, string TrainLabels, string TestImages, string TestLabels)
{
    internal static MnistFiles In(string directory) => new(
        directory,
        Path.Combine(directory, "train-images-idx3-ubyte"),
        Path.Combine(directory, "train-labels-idx1-ubyte"),
        Path.Combine(directory, "t10k-images-idx3-ubyte"),
        Path.Combine(directory, "t10k-labels-idx1-ubyte"));
}

/// <summary>One file a store must hold: its name, exact length and SHA-256 (lower-case hex) when uncompressed.</summary>
public sealed record ExpectedFile(string FileName, long Length, string Sha256);

public enum FetchPhase
{
    /// <summary>Hashing a file already in the cache.</summary>
    Checking,

    /// <summary>Receiving a file from a source; Bytes counts uncompressed bytes written.</summary>
    Downloading,

    /// <summary>Unpacking a file from a downloaded archive; Bytes counts bytes written.</summary>
    Extracting,

    /// <summary>A source failed; Message says why, and the next source is tried.</summary>
    SourceFailed,

    /// <summary>The file is in the cache and verified.</summary>
    Ready,
}

/// <summary>A progress report of a fetch. File is null for reports about a whole source.</summary>
public sealed record FetchProgress(FetchPhase Phase, string Source, string? File, long Bytes, long TotalBytes, string? Message = null);
