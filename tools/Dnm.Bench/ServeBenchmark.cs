using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Dnm.Core.Data;
using SkiaSharp;

namespace Dnm.Bench;

/// <summary>
/// Latency and throughput of a running `dnm serve` (scripts/bench-serve.sh starts it): MNIST test images as grayscale
/// PNGs, posted one per request and 64 per multipart request, by 1 and by 2 clients at once. Loopback only.
/// </summary>
public static class ServeBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var url = Arg(args, "--url") ?? "http://127.0.0.1:8080";
        var seconds = double.Parse(Arg(args, "--seconds") ?? "10", CultureInfo.InvariantCulture);
        var batches = (Arg(args, "--batch") ?? "1,64").Split(',').Select(int.Parse).ToArray();
        var clients = (Arg(args, "--clients") ?? "1,2").Split(',').Select(int.Parse).ToArray();
        using var data = DatasetCatalog.Open("mnist", "test", DatasetCatalog.DefaultDataDir(), limit: 1024);
        var pngs = Enumerable.Range(0, data.Count).Select(i => GrayPng(data, i)).ToArray();
        Console.WriteLine($"{pngs.Length} MNIST test images as PNG ({pngs.Average(p => p.Length):0} bytes each on average); server {url}");
        Console.WriteLine("batch | clients | requests | p50 ms | p95 ms | p99 ms | images/s");
        foreach (var batch in batches)
            foreach (var c in clients)
                await MeasureAsync(url, pngs, batch, c, TimeSpan.FromSeconds(seconds));
        return 0;
    }

    private static async Task MeasureAsync(string url, byte[][] pngs, int batch, int clientCount, TimeSpan duration)
    {
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(1) };
        // Warm-up: the first requests JIT the server's paths.
        for (var i = 0; i < 3; i++) await PostAsync(http, pngs, batch, i);
        var latencies = new List<double>();
        var stop = Stopwatch.StartNew();
        var next = 0;
        var workers = Enumerable.Range(0, clientCount).Select(async _ =>
        {
            while (stop.Elapsed < duration)
            {
                var offset = Interlocked.Add(ref next, batch);
                var t = Stopwatch.StartNew();
                await PostAsync(http, pngs, batch, offset);
                lock (latencies) latencies.Add(t.Elapsed.TotalMilliseconds);
            }
        });
        await Task.WhenAll(workers);
        var elapsed = stop.Elapsed.TotalSeconds;
        latencies.Sort();
        double P(double q) => latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{batch,5} | {clientCount,7} | {latencies.Count,8} | {P(0.5),6:0.0} | {P(0.95),6:0.0} | {P(0.99),6:0.0} | {latencies.Count * batch / elapsed,8:0}"));
    }

    private static async Task PostAsync(HttpClient http, byte[][] pngs, int batch, int offset)
    {
        HttpContent content;
        if (batch == 1)
        {
            content = Png(pngs[offset % pngs.Length]);
        }
        else
        {
            var form = new MultipartFormDataContent();
            for (var i = 0; i < batch; i++) form.Add(Png(pngs[(offset + i) % pngs.Length]), "images", $"{i}.png");
            content = form;
        }
        using var response = await http.PostAsync("/v1/place", content);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    private static ByteArrayContent Png(byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return content;
    }

    private static byte[] GrayPng(IImageDataset data, int index)
    {
        var pixels = new float[data.Shape.Pixels];
        data.CopyImage(index, pixels);
        using var bitmap = new SKBitmap(new SKImageInfo(data.Shape.Width, data.Shape.Height, SKColorType.Gray8, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(pixels.Select(p => (byte)MathF.Round(p * 255f)).ToArray(), 0, bitmap.GetPixels(), pixels.Length);
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
