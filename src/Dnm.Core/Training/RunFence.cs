using System.Globalization;
using System.Text;

namespace Dnm.Core.Training;

/// <summary>
/// Which coordinator incarnation owns a run directory, so that an older one that is still alive (cut off by a partition,
/// or not yet aware that it was replaced) can neither commit a step nor write a file of the run once a newer one exists.
/// Each incarnation takes the next number by creating <c>incarnations/NNNNNNNNN</c> in the run directory with an exclusive
/// create (O_EXCL: of two coordinators racing for a number only one gets it); the highest number owns the run. The older
/// one looks before each step it commits and each checkpoint, evaluation and final file it writes (<see cref="Check"/>),
/// and stops. The look and the write are not one atomic operation: a write that began before the newer incarnation
/// took its number completes (every file is written to a temporary name and renamed, so what it leaves is whole).
/// </summary>
public sealed class RunFence
{
    public const string FolderName = "incarnations";

    // The newest few are kept; older incarnations are gone (a crash-looping coordinator must not fill the folder).
    private const int Keep = 8;

    private readonly string folder;

    private RunFence(string folder, long incarnation)
    {
        this.folder = folder;
        Incarnation = incarnation;
    }

    /// <summary>This incarnation's number: 1 for the run directory's first coordinator, then one more for each.</summary>
    public long Incarnation { get; }

    /// <summary>
    /// Takes the next incarnation number of the run directory <paramref name="runRoot"/>, fencing off every older one.
    /// <paramref name="owner"/> is written into the file, for whoever looks (host, process id, time).
    /// </summary>
    public static RunFence Acquire(string runRoot, string owner) => Acquire(runRoot, owner, beforeCreate: null);

    /// <summary><paramref name="beforeCreate"/> runs between reading the numbers present and creating the file (specs hold a racer there).</summary>
    internal static RunFence Acquire(string runRoot, string owner, Action<long>? beforeCreate)
    {
        var folder = Path.Combine(Path.GetFullPath(runRoot), FolderName);
        Directory.CreateDirectory(folder);
        var next = Highest(folder) + 1;
        while (true)
        {
            beforeCreate?.Invoke(next);
            var path = Path.Combine(folder, Name(next));
            try
            {
                using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                {
                    file.Write(Encoding.UTF8.GetBytes(owner + "\n"));
                    file.Flush(flushToDisk: true);
                }
                // Between reading the highest and creating its file, this coordinator may have been overtaken: others took
                // this number and more, and one of them pruned it, so the create succeeded on a number that is not new.
                // A file is pruned only by an incarnation at least Keep above it, and the highest file is never pruned,
                // so a reused number always sees a file Keep above it here. Give the number back and take a new one.
                if (Highest(folder) < next + Keep) break;
                TryDelete(path);
                next = Highest(folder) + 1;
            }
            catch (IOException) when (File.Exists(path) || Highest(folder) >= next)
            {
                // Another coordinator took this number first: the next free one above everything present.
                next = Math.Max(next + 1, Highest(folder) + 1);
            }
        }
        foreach (var (number, path) in Numbered(folder))
            if (number <= next - Keep)
                TryDelete(path);
        return new RunFence(folder, next);
    }

    /// <summary>The newest incarnation's number where it is newer than this one; null while this one owns the run.</summary>
    public long? Newer() => Highest(folder) is var highest && highest > Incarnation ? highest : null;

    /// <summary>Throws <see cref="RunFencedException"/> when a newer incarnation exists; <paramref name="action"/> says what was refused.</summary>
    public void Check(string action)
    {
        if (Newer() is { } newer)
            throw new RunFencedException($"coordinator incarnation {newer} of {Path.GetDirectoryName(folder)} started after this one ({Incarnation}): " +
                                         $"this coordinator does not {action} and stops; the newer one continues the run");
    }

    private static string Name(long incarnation) => incarnation.ToString("D9", CultureInfo.InvariantCulture);

    private static long Highest(string folder) => Numbered(folder).Select(n => n.Number).DefaultIfEmpty(0).Max();

    private static IEnumerable<(long Number, string Path)> Numbered(string folder)
    {
        if (!Directory.Exists(folder)) yield break;
        foreach (var path in Directory.EnumerateFiles(folder))
            if (long.TryParse(Path.GetFileName(path), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                yield return (n, path);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>A coordinator found a newer incarnation of itself in its run directory (<see cref="RunFence"/>) and stopped.</summary>
public sealed class RunFencedException(string message) : Exception(message);

/// <summary>
/// A run stopped on request (SIGTERM, Ctrl+C) after writing the checkpoint of its last complete step, so the same command
/// resumes it there. <see cref="Checkpoint"/> is null where there was nothing to write (a node without the run's state).
/// </summary>
public sealed class RunStoppedException(string message, long? globalStep = null, string? checkpoint = null) : OperationCanceledException(message)
{
    public long? GlobalStep { get; } = globalStep;
    public string? Checkpoint { get; } = checkpoint;
}
