using System.Buffers;
using System.Security.Cryptography;

namespace Dnm.Core.Data;

/// <summary>
/// Writes a fetched file into a cache directory only once its length and SHA-256 are right, through a
/// temporary file in the same directory and a rename, so a crash or a bad mirror never leaves a
/// half-written or wrong file under the final name.
/// </summary>
internal static class VerifiedFile
{
    private const int ReportEvery = 1 << 20;

    /// <summary>Null when the file on disk has the expected length and SHA-256; otherwise why it does not.</summary>
    public static async Task<string?> CheckAsync(string path, ExpectedFile expected, CancellationToken ct)
    {
        if (!File.Exists(path))
            return $"{path} is missing";
        long length = new FileInfo(path).Length;
        if (length != expected.Length)
            return $"{path} has {length} bytes, expected {expected.Length}";
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        string actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));
        return actual == expected.Sha256 ? null : $"{path} has SHA-256 {actual}, expected {expected.Sha256}";
    }

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="directory"/>/FileName if it has the expected length and hash.
    /// Throws <see cref="InvalidDataException"/> (caught by the store, which then tries the next source) when not.
    /// </summary>
    public static async Task WriteAsync(Stream source, ExpectedFile expected, string directory, string sourceName,
        FetchPhase phase, IProgress<FetchProgress>? progress, CancellationToken ct)
    {
        string final = Path.Combine(directory, expected.FileName);
        string temp = Path.Combine(directory, $".{expected.FileName}.{Guid.NewGuid():N}.tmp");
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long total = 0;
            long nextReport = 0;
            await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                int n;
                while ((n = await source.ReadAsync(buffer, ct)) > 0)
                {
                    total += n;
                    if (total > expected.Length)
                        throw new InvalidDataException($"{expected.FileName} is longer than the expected {expected.Length} bytes");
                    sha.AppendData(buffer, 0, n);
                    await output.WriteAsync(buffer.AsMemory(0, n), ct);
                    if (total >= nextReport)
                    {
                        progress?.Report(new FetchProgress(phase, sourceName, expected.FileName, total, expected.Length));
                        nextReport = total + ReportEvery;
                    }
                }
            }
            if (total != expected.Length)
                throw new InvalidDataException($"{expected.FileName} has {total} bytes, expected {expected.Length}");
            string actual = Convert.ToHexStringLower(sha.GetHashAndReset());
            if (actual != expected.Sha256)
                throw new InvalidDataException($"{expected.FileName} has SHA-256 {actual}, expected {expected.Sha256}");
            File.Move(temp, final, overwrite: true);
            progress?.Report(new FetchProgress(FetchPhase.Ready, sourceName, expected.FileName, total, expected.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            File.Delete(temp);
        }
    }
}
