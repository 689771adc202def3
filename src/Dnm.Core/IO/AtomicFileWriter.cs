namespace Dnm.Core.IO;

/// <summary>
/// Writes a file so that a reader never sees it half-written: the bytes go to a temporary file in the
/// target's directory, and <see cref="Commit"/> renames it over the target. A rename within one
/// directory is atomic on POSIX file systems, so a crash leaves either the old file or the new one.
/// </summary>
/// <remarks>
/// A class rather than a callback helper so that callers can write from <see cref="ReadOnlySpan{T}"/>
/// arguments, which a lambda cannot capture.
/// </remarks>
public sealed class AtomicFileWriter : IDisposable
{
    private readonly string _path;
    private readonly string _tempPath;
    private bool _committed;

    public AtomicFileWriter(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _path = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(_path)
            ?? throw new ArgumentException($"'{path}' has no parent directory.", nameof(path));
        Directory.CreateDirectory(directory);
        // Same directory as the target: a rename across file systems would be a copy, not atomic.
        _tempPath = Path.Combine(directory, $".{Path.GetFileName(_path)}.{Guid.NewGuid():N}.tmp");
        Stream = new FileStream(_tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        using var file = new AtomicFileWriter(path);
        file.Stream.Write(bytes);
        file.Commit();
    }

    /// <summary>The temporary file's stream; write everything here, then call <see cref="Commit"/>.</summary>
    public FileStream Stream { get; }

    /// <summary>Flushes the bytes to disk and renames the temporary file over the target.</summary>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        File.Move(_tempPath, _path, overwrite: true);
        _committed = true;
    }

    /// <summary>Without a prior <see cref="Commit"/>, discards the temporary file and leaves the target untouched.</summary>
    /// <remarks>
    /// A full disk (ENOSPC) or an I/O error (EIO) fails the write; disposing the stream would then try to flush the same
    /// buffered bytes and fail again. The temporary file is deleted whatever the stream does, so a failed write leaves nothing.
    /// </remarks>
    public void Dispose()
    {
        if (_committed)
            return;
        try
        {
            Stream.Dispose();
        }
        catch (IOException)
        {
            // The write has already failed (that is why there was no Commit); its exception is the one to report.
        }
        finally
        {
            File.Delete(_tempPath);
        }
    }
}
