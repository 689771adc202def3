using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Dnm.Node.Serving;

namespace Dnm.Node.Tests.Serving;

/// <summary>`dnm serve`'s HTTP API over real sockets: placements against `dnm map`, every kind of bad input, and the concurrency bound.</summary>
[Collection(TorchCollection.Name)]
public sealed class PlacementServerSpec(ServedMap map) : IClassFixture<ServedMap>
{
    [Fact]
    public async Task A_batch_should_place_every_image_exactly_where_dnm_map_placed_it()
    {
        var (_, client) = await map.ServeAsync();
        // The first 64 images are `dnm map`'s first batch (batch size 64): the same micro-batches, so the same bits.
        var batch = new MultipartFormDataContent();
        for (var i = 0; i < 64; i++) batch.Add(Image(map.Png(i)), "images", $"sample-{i}.png");
        var placements = await PlaceAsync(client, "/v1/place?k=3", batch);
        Assert.Equal(64, placements.GetArrayLength());
        for (var i = 0; i < 64; i++)
        {
            var p = placements[i];
            var expected = map.Mapped[i];
            Assert.Equal($"sample-{i}.png", p.GetProperty("name").GetString());
            Assert.Equal((expected.Row, expected.Col), (p.GetProperty("row").GetInt32(), p.GetProperty("col").GetInt32()));
            Assert.Equal(expected.Distance, p.GetProperty("distance").GetSingle());
            var nearest = p.GetProperty("nearest");
            Assert.Equal(3, nearest.GetArrayLength());
            Assert.Equal(expected.Row * 4 + expected.Col, nearest[0].GetProperty("node").GetInt32());
            Assert.True(nearest[0].GetProperty("distance").GetSingle() <= nearest[1].GetProperty("distance").GetSingle());
            Assert.True(nearest[1].GetProperty("distance").GetSingle() <= nearest[2].GetProperty("distance").GetSingle());
            Assert.Equal(JsonValueKind.Null, p.GetProperty("latent").ValueKind);
        }
    }

    [Fact]
    public async Task A_single_image_should_land_on_dnm_maps_node_and_return_its_latent_vector_on_request()
    {
        var (_, client) = await map.ServeAsync();
        foreach (var i in new[] { 3, 100, 255 })
        {
            var p = (await PlaceAsync(client, "/v1/place?latent=true&k=16", Image(map.Png(i))))[0];
            var expected = map.Mapped[i];
            Assert.Equal((expected.Row, expected.Col), (p.GetProperty("row").GetInt32(), p.GetProperty("col").GetInt32()));
            // Alone, the image is its own micro-batch: convolutions may round differently from a batch of 64 (measured: equal).
            Assert.InRange(p.GetProperty("distance").GetSingle(), expected.Distance - 1e-5f, expected.Distance + 1e-5f);
            Assert.Equal(8, p.GetProperty("latent").GetArrayLength());
            Assert.Equal(16, p.GetProperty("nearest").GetArrayLength());
        }
    }

    [Fact]
    public async Task The_map_endpoint_should_describe_the_lattice()
    {
        var (_, client) = await map.ServeAsync();
        using var doc = JsonDocument.Parse(await client.GetStringAsync("/v1/map"));
        var m = doc.RootElement;
        Assert.Equal(4, m.GetProperty("rows").GetInt32());
        Assert.Equal(4, m.GetProperty("cols").GetInt32());
        Assert.Equal(8, m.GetProperty("latent_dim").GetInt32());
        Assert.Equal(12, m.GetProperty("image_shape").GetProperty("height").GetInt32());
        Assert.Equal(1, m.GetProperty("image_shape").GetProperty("channels").GetInt32());
        // `dnm serve` places no dataset, so it knows no node labels.
        Assert.Equal(JsonValueKind.Null, m.GetProperty("node_labels").ValueKind);
        var png = await client.GetByteArrayAsync("/v1/map/prototypes.png");
        Assert.Equal((byte)0x89, png[0]);
    }

    public static TheoryData<string, string, string> BadBodies() => new()
    {
        // content type, body, expected error code
        { "text/plain", "hello", "unsupported_media_type" },
        { "application/json", "{\"image\": 1}", "unsupported_media_type" },
        { "application/octet-stream", "GIF89a but not really an image", "not_an_image" },
        { "image/png", "", "not_an_image" },
        { "multipart/form-data", "--x\r\n", "malformed_multipart" },
        { "multipart/form-data; boundary=abc", "this is not multipart at all", "malformed_multipart" },
        { "multipart/form-data; boundary=abc", "--abc\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", "malformed_multipart" },
        { "multipart/form-data; boundary=abc", "--abc--\r\n", "malformed_multipart" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Bad_bodies_should_get_a_4xx_with_a_json_error(string type, string body, string code)
    {
        var (_, client) = await map.ServeAsync();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", type);
        var response = await client.PostAsync("/v1/place", content);
        await AssertErrorAsync(response, code);
    }

    [Fact]
    public async Task A_truncated_png_and_a_colour_image_for_a_grayscale_map_should_be_refused_unless_conversion_is_asked_for()
    {
        var (_, client) = await map.ServeAsync();
        var png = map.Png(7);
        await AssertErrorAsync(await client.PostAsync("/v1/place", Image(png[..(png.Length / 2)])), "not_an_image");
        var colour = ServedMap.ColourPng(24, 24);
        var refused = await client.PostAsync("/v1/place", Image(colour));
        var message = await AssertErrorAsync(refused, "wrong_channels");
        Assert.Contains("convert=true", message);
        var converted = await PlaceAsync(client, "/v1/place?convert=true", Image(colour));
        Assert.InRange(converted[0].GetProperty("row").GetInt32(), 0, 3);
    }

    [Fact]
    public async Task A_decompression_bomb_should_be_refused_from_its_header()
    {
        var (_, client) = await map.ServeAsync();
        // 60000 x 60000 gray pixels (3.6 GB decoded) declared by a 100-byte file.
        var message = await AssertErrorAsync(await client.PostAsync("/v1/place", Image(Bomb(60000, 60000))), "too_many_pixels", 413);
        Assert.Contains("60000x60000", message);
        // An honest image above a lower budget is refused the same way.
        var (_, strict) = await map.ServeAsync(new ServerOptions { MaxImagePixels = 100 });
        await AssertErrorAsync(await strict.PostAsync("/v1/place", Image(map.Png(0))), "too_many_pixels", 413);
    }

    [Fact]
    public async Task Bodies_and_batches_above_the_limits_should_get_413()
    {
        var (_, client) = await map.ServeAsync(new ServerOptions { MaxBodyBytes = 4096, MaxBatch = 3 });
        // Declared too large: refused from the headers (the client waits for 100-continue, so it sends no body)...
        var declared = new HttpRequestMessage(HttpMethod.Post, "/v1/place") { Content = Image(new byte[10_000]) };
        declared.Headers.ExpectContinue = true;
        var refused = await client.SendAsync(declared);
        await AssertErrorAsync(refused, "body_too_large", 413);
        Assert.Contains("close", refused.Headers.Connection);
        // ...and (chunked, no length) found too large while reading.
        var chunked = new StreamContent(new MemoryStream(new byte[10_000]));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/place") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        await AssertErrorAsync(await client.SendAsync(request), "body_too_large", 413);
        var batch = new MultipartFormDataContent();
        for (var i = 0; i < 4; i++) batch.Add(Image(map.Png(i)), "images", $"{i}.png");
        await AssertErrorAsync(await client.PostAsync("/v1/place", batch), "too_many_images", 413);
    }

    [Theory]
    [InlineData("/v1/place?k=0")]
    [InlineData("/v1/place?k=17")]
    [InlineData("/v1/place?k=two")]
    [InlineData("/v1/place?latent=maybe")]
    public async Task Bad_parameters_should_get_400(string path)
    {
        var (_, client) = await map.ServeAsync();
        await AssertErrorAsync(await client.PostAsync(path, Image(map.Png(0))), "bad_parameter", 400);
    }

    [Fact]
    public async Task Unknown_paths_and_members_without_a_dataset_should_get_404_in_json()
    {
        var (_, client) = await map.ServeAsync();
        await AssertErrorAsync(await client.GetAsync("/v2/nothing"), "not_found", 404);
        await AssertErrorAsync(await client.GetAsync("/v1/nodes/0/members"), "no_dataset", 404);
    }

    [Fact]
    public async Task Placements_beyond_the_concurrency_and_queue_bounds_should_get_503_and_the_rest_be_served()
    {
        var (_, client) = await map.ServeAsync(new ServerOptions { MaxConcurrency = 1, MaxQueue = 0 });
        // The first request holds the only turn while its body is still arriving.
        var release = new TaskCompletionSource();
        var slow = new GatedContent(map.Png(1), release.Task);
        slow.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        var first = client.PostAsync("/v1/place", slow);
        // Wait until the server reports it in flight (rather than sleeping and hoping).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        string scraped;
        while (!(scraped = await client.GetStringAsync("/metrics")).Contains("dnm_serve_placements_in_flight 1", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the first request never came in flight: " + scraped + (first.IsCompleted ? "first completed" : ""));
            await Task.Delay(20);
        }
        var busy = await client.PostAsync("/v1/place", Image(map.Png(2)));
        await AssertErrorAsync(busy, "busy", 503);
        Assert.Equal("1", busy.Headers.GetValues("Retry-After").Single());
        release.SetResult();
        var served = await first;
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        // Once the turn is free, the next request is served.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/place", Image(map.Png(2)))).StatusCode);
        var metrics = await client.GetStringAsync("/metrics");
        Assert.Contains("dnm_serve_rejected_total 1", metrics);
        Assert.Contains("dnm_serve_images_placed_total 2", metrics);
        // prometheus-net's per-route request counts and latency histograms.
        var lines = metrics.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("http_requests_received_total{", StringComparison.Ordinal) && l.Contains("code=\"503\"", StringComparison.Ordinal)
            && l.Contains("endpoint=\"/v1/place\"", StringComparison.Ordinal) && l.EndsWith(" 1", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("http_request_duration_seconds_bucket{", StringComparison.Ordinal) && l.Contains("code=\"200\"", StringComparison.Ordinal)
            && l.Contains("endpoint=\"/v1/place\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Health_and_readiness_should_follow_loading()
    {
        var state = new ServerState();
        await using var server = await MapServer.StartAsync(new ServerOptions { Addresses = [IPAddress.Loopback], Port = 0 }, state, explorerPage: false);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        state.Report("loading the checkpoint");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
        var notReady = await client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Contains("loading the checkpoint", await notReady.Content.ReadAsStringAsync());
        await AssertErrorAsync(await client.PostAsync("/v1/place", Image(map.Png(0))), "not_ready", 503);
        state.Publish(new Core.Explore.MapExplorer(map.Placer, null, null));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
    }

    [Fact]
    public async Task Dnm_serve_should_serve_until_cancelled_and_exit_0()
    {
        var port = Dnm.Tests.Shared.TestPorts.Next();
        using var cancel = new CancellationTokenSource();
        var run = Task.Run(() => Cli.Run(cancel.Token, "serve", "--checkpoint", map.Checkpoint, "--port", $"{port}", "--host", "127.0.0.1", "--device", "cpu"));
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (run.IsCompleted) Assert.Fail($"dnm serve stopped: {(await run).Error}");
            try
            {
                if ((await client.GetAsync("/readyz")).IsSuccessStatusCode) break;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            Assert.True(DateTime.UtcNow < deadline, "dnm serve never became ready");
            await Task.Delay(50);
        }
        var p = (await PlaceAsync(client, "/v1/place", Image(map.Png(9))))[0];
        Assert.Equal((map.Mapped[9].Row, map.Mapped[9].Col), (p.GetProperty("row").GetInt32(), p.GetProperty("col").GetInt32()));
        cancel.Cancel();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains($"127.0.0.1:{port}", result.Out);
    }

    private static ByteArrayContent Image(byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return content;
    }

    private static async Task<JsonElement> PlaceAsync(HttpClient client, string path, HttpContent content)
    {
        var response = await client.PostAsync(path, content);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("placements").Clone();
    }

    /// <summary>Asserts a JSON error with <paramref name="code"/> and a 4xx (or the given) status; returns its message.</summary>
    private static async Task<string> AssertErrorAsync(HttpResponseMessage response, string code, int? status = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        if (status is { } s) Assert.True((int)response.StatusCode == s, $"expected {s}, got {(int)response.StatusCode}: {body}");
        else Assert.True((int)response.StatusCode is >= 400 and < 500, $"expected a 4xx, got {(int)response.StatusCode}: {body}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        var message = error.GetProperty("message").GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(message));
        return message;
    }

    /// <summary>A 1-pixel grayscale PNG whose header claims <paramref name="width"/> x <paramref name="height"/> pixels (CRC fixed).</summary>
    private static byte[] Bomb(int width, int height)
    {
        var png = ServedMap.ColourPng(1, 1);
        // The IHDR chunk follows the 8-byte signature: length (4), "IHDR" (4), width (4), height (4), ..., CRC.
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>Sends its first byte at once (flushed, so the server sees the request) and the rest once <paramref name="gate"/> completes.</summary>
    private sealed class GatedContent(byte[] bytes, Task gate) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(bytes.AsMemory(0, 1));
            await stream.FlushAsync();
            await gate;
            await stream.WriteAsync(bytes.AsMemory(1));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes.Length;
            return true;
        }
    }
}
