using System.IO.Compression;

namespace Dnm.Core.Data;

/// <summary>
/// The last resort for a dataset Debian packages: <c>apt-get download &lt;package&gt;</c> (no root needed), then the
/// .deb is unpacked with <c>dpkg-deb -x</c>, and every needed file is taken from its <c>&lt;name&gt;.gz</c> inside it,
/// decompressed and checked against its SHA-256 like a mirror's.
/// </summary>
internal sealed class DebianPackageSource(string package, TimeSpan timeout)
{
    public string Name => $"apt-get download {package}";

    public async Task FetchAsync(List<ExpectedFile> needed, string directory, List<string> tried,
        IProgress<FetchProgress>? progress, CancellationToken ct)
    {
        var work = Directory.CreateTempSubdirectory("dnm-deb-");
        try
        {
            progress?.Report(new FetchProgress(FetchPhase.Downloading, Name, null, 0, 0));
            var failure = await RunAsync("apt-get", work.FullName, ct, "download", package);
            var deb = work.GetFiles("*.deb").FirstOrDefault();
            if (failure is not null || deb is null)
            {
                Fail(tried, progress, failure ?? "it produced no .deb file");
                return;
            }
            var unpacked = Path.Combine(work.FullName, "x");
            failure = await RunAsync("dpkg-deb", work.FullName, ct, "-x", deb.FullName, unpacked);
            if (failure is not null)
            {
                Fail(tried, progress, failure);
                return;
            }
            foreach (var file in needed.ToArray())
            {
                var gz = Directory.EnumerateFiles(unpacked, file.FileName + ".gz", SearchOption.AllDirectories).FirstOrDefault();
                if (gz is null) continue;
                progress?.Report(new FetchProgress(FetchPhase.Extracting, Name, file.FileName, 0, file.Length));
                await using var input = File.OpenRead(gz);
                await using var plain = new GZipStream(input, CompressionMode.Decompress);
                await VerifiedFile.WriteAsync(plain, file, directory, Name, FetchPhase.Extracting, progress, ct);
                needed.Remove(file);
            }
            if (needed.Count > 0)
                Fail(tried, progress, $"the package lacks {string.Join(", ", needed.Select(f => f.FileName + ".gz"))}");
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is InvalidDataException or IOException or System.ComponentModel.Win32Exception)
        {
            Fail(tried, progress, e.Message);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private async Task<string?> RunAsync(string program, string workDir, CancellationToken ct, params string[] args)
    {
        int? code;
        string output;
        try
        {
            (code, output) = await ToolProcess.RunAsync(program, workDir, timeout, ct, args);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return $"{program} is not installed";
        }
        if (code is null) return $"{program} did not finish within {timeout.TotalSeconds:0} s";
        if (code == 0) return null;
        return $"{program} exited with {code}: {ToolProcess.LastLines(output, l => !l.StartsWith("W:", StringComparison.Ordinal), 2)}";
    }

    private void Fail(List<string> tried, IProgress<FetchProgress>? progress, string reason)
    {
        tried.Add($"{Name}: {reason}");
        progress?.Report(new FetchProgress(FetchPhase.SourceFailed, Name, null, 0, 0, reason));
    }
}
