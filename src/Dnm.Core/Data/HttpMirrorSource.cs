using System.IO.Compression;
using System.Net.Sockets;

namespace Dnm.Core.Data;

/// <summary>A web mirror that serves the files gzip-compressed as &lt;base&gt;&lt;name&gt;.gz (the layout of the MNIST mirrors).</summary>
internal sealed class HttpMirrorSource(Uri baseUri, Func<HttpMessageHandler> handlerFactory, TimeSpan fileTimeout)
{
    /// <summary>Fetches what it can of <paramref name="needed"/>, removing each file it wrote, and notes each failure in <paramref name="tried"/>.</summary>
    public async Task FetchAsync(List<ExpectedFile> needed, string directory, List<string> tried,
        IProgress<FetchProgress>? progress, CancellationToken ct)
    {
        using var http = new HttpClient(handlerFactory(), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        foreach (var file in needed.ToArray())
        {
            var uri = new Uri(baseUri, file.FileName + ".gz");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(fileTimeout);
            try
            {
                using var response = await http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                response.EnsureSuccessStatusCode();
                await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
                await using var gzip = new GZipStream(body, CompressionMode.Decompress);
                await VerifiedFile.WriteAsync(gzip, file, directory, uri.ToString(), FetchPhase.Downloading, progress, timeout.Token);
                needed.Remove(file);
            }
            catch (Exception e) when (!ct.IsCancellationRequested &&
                                      e is HttpRequestException or InvalidDataException or IOException or OperationCanceledException)
            {
                string reason = e is OperationCanceledException ? $"no answer within {fileTimeout.TotalSeconds:0} s" : Describe(e);
                tried.Add($"{uri}: {reason}");
                progress?.Report(new FetchProgress(FetchPhase.SourceFailed, uri.ToString(), file.FileName, 0, file.Length, reason));
                // A mirror we cannot reach will not serve the next file either: skip it instead of waiting again.
                if (e is OperationCanceledException || e is HttpRequestException { StatusCode: null })
                    return;
            }
        }
    }

    private static string Describe(Exception e) => e switch
    {
        HttpRequestException { InnerException: SocketException s } => $"{e.Message.TrimEnd('.')} ({s.Message})",
        HttpRequestException { StatusCode: { } code } => $"HTTP {(int)code} {code}",
        _ => e.Message,
    };
}
