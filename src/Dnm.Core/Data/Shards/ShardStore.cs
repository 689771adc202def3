using Dnm.Core.IO;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Win32.SafeHandles;

namespace Dnm.Core.Data.Shards;

/// <summary>
/// Where shards are read from: random reads of a sample's bytes (<see cref="ReadAt"/>) for training, and one sequential
/// pass (<see cref="OpenSequential"/>) to index a shard that comes without its <c>.idx</c>. Thread-safe: the loader's
/// decode threads read concurrently.
/// </summary>
public interface IShardStore : IDisposable
{
    /// <summary>The shard's name in messages: its path or URL.</summary>
    string Describe(int shard);

    /// <summary>The file name (last path or URL segment, no query), as a manifest lists it.</summary>
    string FileName(int shard);

    int Count { get; }

    /// <summary>The shard's size in bytes.</summary>
    long Length(int shard);

    /// <summary>Fills <paramref name="destination"/> with the shard's bytes from <paramref name="offset"/>.</summary>
    void ReadAt(int shard, long offset, Span<byte> destination);

    /// <summary>The whole shard, from its start.</summary>
    Stream OpenSequential(int shard);

    /// <summary>A small file beside the shard (<c>&lt;shard&gt;&lt;suffix&gt;</c>, e.g. ".idx"), or null where there is none.</summary>
    string? ReadSidecar(int shard, string suffix);

    /// <summary>A small file in the shards' folder (e.g. manifest.json), or null where there is none.</summary>
    string? ReadSibling(string fileName);

    /// <summary>Bytes read by <see cref="ReadAt"/> and <see cref="OpenSequential"/> so far (what a rank read).</summary>
    long BytesRead { get; }
}

/// <summary>Shards on a local or mounted file system: positional reads, no shared file position, no lock.</summary>
public sealed class LocalShardStore(IReadOnlyList<string> paths) : IShardStore
{
    private long bytesRead;

    public int Count => paths.Count;

    public long BytesRead => Interlocked.Read(ref bytesRead);

    public string Describe(int shard) => paths[shard];

    public string FileName(int shard) => Path.GetFileName(paths[shard]);

    public long Length(int shard)
    {
        var info = new FileInfo(paths[shard]);
        if (!info.Exists) throw new DataException($"shard {paths[shard]} does not exist. Check the shards: spec, or pack the data again with `dnm data pack`.");
        return info.Length;
    }

    public void ReadAt(int shard, long offset, Span<byte> destination)
    {
        // One open per read costs microseconds against a decode's hundred; it keeps no descriptor per shard open.
        using SafeFileHandle handle = File.OpenHandle(paths[shard], FileMode.Open, FileAccess.Read, FileShare.Read);
        int done = 0;
        while (done < destination.Length)
        {
            int n = RandomAccess.Read(handle, destination[done..], offset + done);
            if (n == 0) throw new DataException($"shard {paths[shard]} ends at byte {offset + done}, inside a sample that its index places up to byte {offset + destination.Length}: the file is truncated or its .idx is stale. Pack it again, or delete its .idx.");
            done += n;
        }
        Interlocked.Add(ref bytesRead, destination.Length);
    }

    /// <summary>A seekable file stream: an index scan seeks past the images and reads the headers only.</summary>
    public Stream OpenSequential(int shard) => new FileStream(paths[shard], FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);

    public string? ReadSidecar(int shard, string suffix)
    {
        var path = paths[shard] + suffix;
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    public string? ReadSibling(string fileName)
    {
        if (paths.Count == 0) return null;
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(paths[0]))!, fileName);
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    public void Dispose() { }
}

/// <summary>
/// Shards behind HTTP(S) URLs: a sample is one Range request, a failed or cut request is retried with back-off and
/// resumed from the byte where it stopped. Any server that answers Range requests works: a presigned S3 URL, a public
/// GCS object, nginx, Python's http.server does not (it ignores Range) and is refused with a message saying so.
/// </summary>
public sealed class HttpShardStore : IShardStore
{
    private readonly IReadOnlyList<Uri> urls;
    private readonly HttpClient http;
    private readonly int attempts;
    private readonly TimeSpan firstBackoff;
    private readonly long?[] lengths;
    private long bytesRead;

    /// <param name="attempts">Tries per request before the read fails (first try included).</param>
    /// <param name="firstBackoff">The wait after the first failure; it doubles after each further one.</param>
    public HttpShardStore(IReadOnlyList<Uri> urls, HttpMessageHandler? handler = null, int attempts = 6, TimeSpan? firstBackoff = null)
    {
        this.urls = urls;
        this.attempts = attempts;
        this.firstBackoff = firstBackoff ?? TimeSpan.FromMilliseconds(200);
        lengths = new long?[urls.Count];
        http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            // The decode threads and the prefetch read many samples at once.
            MaxConnectionsPerServer = 32,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(15),
            AutomaticDecompression = DecompressionMethods.None,
        }) { Timeout = TimeSpan.FromSeconds(60) };
    }

    public int Count => urls.Count;

    public long BytesRead => Interlocked.Read(ref bytesRead);

    public string Describe(int shard) => urls[shard].GetLeftPart(UriPartial.Path);

    public string FileName(int shard) => Uri.UnescapeDataString(urls[shard].Segments[^1]);

    public long Length(int shard)
    {
        if (lengths[shard] is { } known) return known;
        long length = Retry(shard, "its size", () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Head, urls[shard]);
            using var response = http.Send(request);
            Require(response, shard);
            return response.Content.Headers.ContentLength
                   ?? throw new DataException($"{Describe(shard)} answers without a Content-Length; serve the shards from a server that sends one.");
        });
        lengths[shard] = length;
        return length;
    }

    public void ReadAt(int shard, long offset, Span<byte> destination)
    {
        int done = 0;
        // Retried as a whole request but resumed from the first byte not yet received.
        var target = new byte[destination.Length];
        Retry(shard, $"bytes {offset}-{offset + destination.Length - 1}", () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, urls[shard]);
            request.Headers.Range = new RangeHeaderValue(offset + done, offset + target.Length - 1);
            using var response = http.Send(request, HttpCompletionOption.ResponseHeadersRead);
            Require(response, shard);
            if (response.StatusCode != HttpStatusCode.PartialContent)
                throw new DataException($"{Describe(shard)} ignores Range requests (it answered {(int)response.StatusCode} instead of 206). Serve the shards from a server that supports them (nginx, S3, GCS, `dnm`'s tests use one), or copy them to a local folder.");
            using var body = response.Content.ReadAsStream();
            int n;
            while (done < target.Length && (n = body.Read(target, done, target.Length - done)) > 0)
            {
                done += n;
                Interlocked.Add(ref bytesRead, n);
            }
            if (done < target.Length) throw new IOException($"the body ended after {done} of {target.Length} bytes");
            return 0;
        });
        target.CopyTo(destination);
    }

    public Stream OpenSequential(int shard) => new ResumingHttpStream(this, shard);

    public string? ReadSidecar(int shard, string suffix) => GetText(new Uri(urls[shard].GetLeftPart(UriPartial.Path) + suffix + urls[shard].Query), Describe(shard) + suffix);

    public string? ReadSibling(string fileName) =>
        urls.Count == 0 ? null : GetText(new Uri(urls[0], fileName), new Uri(urls[0], fileName).GetLeftPart(UriPartial.Path));

    private string? GetText(Uri uri, string name)
    {
        return Retry(-1, name, () =>
        {
            using var response = http.Send(new HttpRequestMessage(HttpMethod.Get, uri));
            if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Forbidden) return null;
            if (!response.IsSuccessStatusCode) throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.StatusCode}", null, response.StatusCode);
            using var reader = new StreamReader(response.Content.ReadAsStream());
            return reader.ReadToEnd();
        });
    }

    private void Require(HttpResponseMessage response, int shard)
    {
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized or HttpStatusCode.Gone)
            throw new DataException($"{Describe(shard)} answered {(int)response.StatusCode} {response.StatusCode}. Check the URL pattern (and that a presigned URL has not expired).");
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.StatusCode}", null, response.StatusCode);
    }

    /// <summary>Runs <paramref name="request"/>, retrying network errors and 5xx/429 answers with doubling waits.</summary>
    private T Retry<T>(int shard, string what, Func<T> request)
    {
        var wait = firstBackoff;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return request();
            }
            catch (Exception e) when (attempt < attempts && e is HttpRequestException or IOException or TaskCanceledException)
            {
                Thread.Sleep(wait);
                wait *= 2;
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
            {
                throw new DataException($"{(shard >= 0 ? Describe(shard) : "shard server")}: could not read {what} after {attempts} tries ({e.Message}). Check that the server is reachable, or copy the shards to a local folder.", e);
            }
        }
    }

    public void Dispose() => http.Dispose();

    /// <summary>A shard as one stream; a connection cut midway is reopened with a Range request from the byte it reached.</summary>
    private sealed class ResumingHttpStream(HttpShardStore store, int shard) : ForwardReadStream
    {
        private HttpResponseMessage? response;
        private Stream? body;
        private long position;

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(Span<byte> destination)
        {
            var wait = store.firstBackoff;
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    body ??= Open();
                    int n = body.Read(destination);
                    position += n;
                    Interlocked.Add(ref store.bytesRead, n);
                    return n;
                }
                catch (Exception e) when (attempt < store.attempts && e is HttpRequestException or IOException or TaskCanceledException)
                {
                    CloseBody();
                    Thread.Sleep(wait);
                    wait *= 2;
                }
                catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
                {
                    throw new DataException($"{store.Describe(shard)}: the download stopped at byte {position} and could not be resumed after {store.attempts} tries ({e.Message}).", e);
                }
            }
        }

        private Stream Open()
        {
            var request = new HttpRequestMessage(HttpMethod.Get, store.urls[shard]);
            if (position > 0) request.Headers.Range = new RangeHeaderValue(position, null);
            response = store.http.Send(request, HttpCompletionOption.ResponseHeadersRead);
            store.Require(response, shard);
            if (position > 0 && response.StatusCode != HttpStatusCode.PartialContent)
                throw new DataException($"{store.Describe(shard)} ignores Range requests, so a cut download cannot resume. Serve the shards from a server that supports them, or copy them to a local folder.");
            return response.Content.ReadAsStream();
        }

        private void CloseBody()
        {
            body?.Dispose();
            response?.Dispose();
            body = null;
            response = null;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) CloseBody();
            base.Dispose(disposing);
        }

    }
}

/// <summary>A read-only pass-through that counts what it reads and exposes the count as its position (for a forward-only tar scan).</summary>
internal sealed class CountingStream(Stream inner) : ForwardReadStream
{
    private readonly byte[] tail = new byte[512];
    private long position;

    public override long Position { get => position; set => throw new NotSupportedException(); }

    public override int Read(Span<byte> destination)
    {
        int n = inner.Read(destination);
        // The last 512 bytes read: right after a tar header, the header itself (its checksum is checked).
        if (n >= 512) destination.Slice(n - 512, 512).CopyTo(tail);
        else if (n > 0)
        {
            tail.AsSpan(n).CopyTo(tail);
            destination[..n].CopyTo(tail.AsSpan(512 - n));
        }
        position += n;
        return n;
    }

    /// <summary>The last 512 bytes read, once at least that many were.</summary>
    public bool TryGetTail(Span<byte> destination)
    {
        if (position < 512) return false;
        tail.CopyTo(destination);
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
