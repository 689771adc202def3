using Dnm.Core.Data;
using Dnm.Core.Data.Shards;
using Dnm.Tests.Shared;

namespace Dnm.Core.Tests.Data.Shards;

/// <summary>Shards behind a real local HTTP server (<see cref="RangeFileServer"/>), read with Range requests.</summary>
public sealed class HttpShardSpec : IDisposable
{
    private static readonly ImageShape Gray = new(1, 6, 5);
    private readonly ScratchDirectory dir = new();
    private readonly RangeFileServer server;

    public HttpShardSpec()
    {
        ShardPacker.Pack(new ByteDataset(30, Gray), new ByteDataset(6, Gray, seed: 3),
            new PackOptions { Out = dir.Path, ShardBytes = 8 * 1024, Source = "bytes" }, null, CancellationToken.None);
        server = new RangeFileServer(dir.Path);
    }

    public void Dispose()
    {
        server.Dispose();
        dir.Dispose();
    }

    private string Pattern => $"{server.BaseUrl}train-{{000000..{Directory.GetFiles(dir.Path, "train-*.tar").Length - 1:D6}}}.tar";

    private static ShardDataset Open(ShardSource? source) =>
        ShardDataset.Open(source ?? throw new InvalidOperationException("no such split"), new ShardOptions { FallbackShape = Gray });

    [Fact]
    public void Shards_over_http_should_read_exactly_what_local_shards_read_and_find_the_test_split_in_the_manifest()
    {
        using var remote = Open(ShardSpec.Resolve(Pattern, "train"));
        using var local = Open(ShardSpec.Resolve(dir.Path, "train"));
        using var test = Open(ShardSpec.Resolve(Pattern, "test"));

        Assert.Equal(local.Count, remote.Count);
        Assert.Equal(6, test.Count);
        Assert.Equal(local.ClassNames, remote.ClassNames);
        for (int i = 0; i < local.Count; i++)
        {
            var (a, b) = (new float[Gray.Pixels], new float[Gray.Pixels]);
            local.CopyImage(i, a);
            remote.CopyImage(i, b);
            Assert.Equal(a, b);
            Assert.Equal((local.Key(i), local.Label(i)), (remote.Key(i), remote.Label(i)));
        }
    }

    [Fact]
    public void A_cut_connection_should_be_retried_and_resumed_from_the_byte_it_reached()
    {
        using var remote = Open(ShardSpec.Resolve(Pattern, "train"));
        var expected = new float[Gray.Pixels];
        using (var local = Open(ShardSpec.Resolve(dir.Path, "train"))) local.CopyImage(7, expected);
        server.CutAfter = 10;
        server.CutsLeft = 2;
        long before = server.Requests;

        var read = new float[Gray.Pixels];
        remote.CopyImage(7, read);

        Assert.Equal(expected, read);
        Assert.Equal(3, server.Requests - before);
    }

    [Fact]
    public void A_shard_without_an_index_should_be_streamed_and_hashed_once_and_a_cut_stream_resumed()
    {
        foreach (var idx in Directory.GetFiles(dir.Path, "*.idx")) File.Delete(idx);
        server.CutAfter = 3000;
        server.CutsLeft = 1;

        using var remote = Open(ShardSpec.Resolve(Pattern, "train"));

        Assert.Equal(30, remote.Count);
    }

    [Fact]
    public void A_server_that_ignores_range_requests_should_get_one_clear_error()
    {
        using var remote = Open(ShardSpec.Resolve(Pattern, "train"));
        server.IgnoreRange = true;

        var e = Assert.Throws<DataException>(() => remote.CopyImage(0, new float[Gray.Pixels]));
        Assert.Contains("ignores Range requests", e.Message);
    }

    [Fact]
    public void A_missing_shard_should_be_an_error_naming_its_url()
    {
        var e = Assert.Throws<DataException>(() => Open(ShardSpec.Resolve($"{server.BaseUrl}train-{{000000..000099}}.tar", "train")));
        Assert.Contains("404", e.Message);
        Assert.Contains(server.BaseUrl, e.Message);
    }
}
