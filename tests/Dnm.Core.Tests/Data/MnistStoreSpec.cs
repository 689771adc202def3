using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

/// <summary>The store's source logic against fake mirrors serving synthetic files (no network).</summary>
public sealed class MnistStoreSpec : IDisposable
{
    private static readonly byte[] One = Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray();
    private static readonly byte[] Two = Enumerable.Range(0, 500).Select(i => (byte)(i * 7)).ToArray();
    private static readonly ExpectedFile[] Files = [Expect("one", One), Expect("two", Two)];
    private static readonly Uri Down = new("https://down.test/mnist/");
    private static readonly Uri Up = new("https://up.test/mnist/");

    private readonly ScratchDirectory _dir = new();
    private readonly List<Uri> _requests = [];
    private readonly SyncProgress _progress = new();

    public void Dispose() => _dir.Dispose();

    private static ExpectedFile Expect(string name, byte[] content) =>
        new(name, content.Length, Convert.ToHexStringLower(SHA256.HashData(content)));

    private string Cached(string name) => _dir.File("mnist", name);

    /// <summary>A store over <see cref="Files"/> whose HTTP requests are answered by <paramref name="respond"/>.</summary>
    private MnistStore Store(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> respond, params Uri[] mirrors) =>
        new(new MnistStoreOptions { Mirrors = mirrors, UseNpm = false, FileTimeout = TimeSpan.FromMilliseconds(300) },
            Files, () => new FakeHandler(_requests, respond));

    /// <summary>Down is unreachable; Up serves the gzip of <paramref name="content"/> for every file.</summary>
    private static Task<HttpResponseMessage> Serve(HttpRequestMessage request, Func<string, byte[]?> content)
    {
        if (request.RequestUri!.Host == Down.Host)
            throw new HttpRequestException("Name or service not known (down.test:443)");
        string name = Path.GetFileNameWithoutExtension(request.RequestUri.AbsolutePath);
        var body = content(name);
        return Task.FromResult(body is null
            ? new HttpResponseMessage(HttpStatusCode.NotFound)
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(Idx.Gzip(body)) });
    }

    private static byte[]? Good(string name) => name == "one" ? One : name == "two" ? Two : null;

    [Fact]
    public async Task Should_fall_through_an_unreachable_mirror_without_asking_it_twice()
    {
        var files = await Store((r, _) => Serve(r, Good), Down, Up).EnsureAsync(_dir.Path, _progress);

        Assert.Equal(_dir.File("mnist"), files.Directory);
        Assert.Equal(One, await File.ReadAllBytesAsync(Cached("one")));
        Assert.Equal(Two, await File.ReadAllBytesAsync(Cached("two")));
        Assert.Single(_requests, u => u.Host == Down.Host);
        Assert.Equal(2, _requests.Count(u => u.Host == Up.Host));
        Assert.Contains(_progress.Reports, p => p.Phase == FetchPhase.SourceFailed && p.Source.Contains(Down.Host, StringComparison.Ordinal));
        Assert.Equal(2, _progress.Reports.Count(p => p is { Phase: FetchPhase.Ready, Bytes: > 0 } && p.Source.Contains(Up.Host, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Should_give_up_on_a_silent_mirror_after_the_timeout()
    {
        var watch = Stopwatch.StartNew();
        await Store(async (r, ct) =>
        {
            if (r.RequestUri!.Host == Down.Host)
                await Task.Delay(Timeout.Infinite, ct);
            return await Serve(r, Good);
        }, Down, Up).EnsureAsync(_dir.Path, _progress);

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
        Assert.Single(_requests, u => u.Host == Down.Host);
        Assert.Contains(_progress.Reports, p => p.Phase == FetchPhase.SourceFailed && p.Message!.Contains("no answer", StringComparison.Ordinal));
        Assert.True(File.Exists(Cached("two")));
    }

    [Fact]
    public async Task Should_not_touch_the_network_when_the_cache_is_valid()
    {
        Directory.CreateDirectory(_dir.File("mnist"));
        await File.WriteAllBytesAsync(Cached("one"), One);
        await File.WriteAllBytesAsync(Cached("two"), Two);
        await Store((_, _) => throw new InvalidOperationException("no request expected"), Up).EnsureAsync(_dir.Path);
        Assert.Empty(_requests);
    }

    [Fact]
    public async Task Should_refetch_a_cached_file_with_the_wrong_hash()
    {
        Directory.CreateDirectory(_dir.File("mnist"));
        await File.WriteAllBytesAsync(Cached("one"), One.Select(b => (byte)~b).ToArray());
        await File.WriteAllBytesAsync(Cached("two"), Two);

        await Store((r, _) => Serve(r, Good), Up).EnsureAsync(_dir.Path);

        Assert.Equal(One, await File.ReadAllBytesAsync(Cached("one")));
        Assert.Equal([new Uri(Up, "one.gz")], _requests);
    }

    [Fact]
    public async Task Should_report_a_wrong_cached_file_when_no_source_can_replace_it()
    {
        Directory.CreateDirectory(_dir.File("mnist"));
        await File.WriteAllBytesAsync(Cached("one"), One.Select(b => (byte)~b).ToArray());
        await File.WriteAllBytesAsync(Cached("two"), Two);

        var e = await Assert.ThrowsAsync<DataException>(() => Store((_, _) => throw new InvalidOperationException()).EnsureAsync(_dir.Path));

        Assert.Contains($"{Cached("one")} has SHA-256", e.Message);
        Assert.Contains($"expected {Files[0].Sha256}", e.Message);
        Assert.Contains("No source is configured", e.Message);
        Assert.Contains($"into {_dir.File("mnist")}", e.Message);
        Assert.Contains("mnist: one could not be fetched", e.Message);
    }

    [Fact]
    public async Task Should_reject_wrong_content_and_list_every_source_tried()
    {
        // Up serves same-length files with other bytes; Down is unreachable.
        var e = await Assert.ThrowsAsync<DataException>(() =>
            Store((r, _) => Serve(r, n => Good(n)?.Reverse().ToArray()), Up, Down).EnsureAsync(_dir.Path));

        Assert.Contains($"{new Uri(Up, "one.gz")}: one has SHA-256", e.Message);
        Assert.Contains($"{new Uri(Up, "two.gz")}: two has SHA-256", e.Message);
        Assert.Contains($"{new Uri(Down, "one.gz")}: Name or service not known", e.Message);
        // Nothing unverified may be left under the final names, nor temporary files.
        Assert.Empty(Directory.GetFiles(_dir.File("mnist")));
    }

    [Fact]
    public async Task Should_report_http_errors_and_keep_asking_a_reachable_mirror()
    {
        var e = await Assert.ThrowsAsync<DataException>(() =>
            Store((r, _) => Serve(r, n => n == "two" ? Two : null), Up).EnsureAsync(_dir.Path));

        Assert.Contains("HTTP 404", e.Message);
        Assert.True(File.Exists(Cached("two")));
        Assert.Contains("one could not be fetched", e.Message);
    }

    private sealed class FakeHandler(List<Uri> requests, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> respond)
        : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (requests)
                requests.Add(request.RequestUri!);
            return respond(request, cancellationToken);
        }
    }
}

/// <summary>Records reports synchronously (Progress&lt;T&gt; would post them to the thread pool, after the assertions).</summary>
internal sealed class SyncProgress : IProgress<FetchProgress>
{
    private readonly List<FetchProgress> _reports = [];

    public IReadOnlyList<FetchProgress> Reports
    {
        get
        {
            lock (_reports)
                return _reports.ToArray();
        }
    }

    public void Report(FetchProgress value)
    {
        lock (_reports)
            _reports.Add(value);
    }
}
