using System.Collections.Concurrent;
using System.Net;
using Dnm.Tests.Shared;

namespace Dnm.Node.Tests.Observability;

/// <summary>
/// Stands in for an OpenTelemetry collector: accepts OTLP/HTTP (protobuf) posts and keeps their bodies,
/// answering with the empty success message the exporters expect.
/// </summary>
public sealed class OtlpReceiver : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly Task loop;

    public OtlpReceiver()
    {
        Port = TestPorts.Next();
        listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        listener.Start();
        loop = Task.Run(ServeAsync);
    }

    public int Port { get; }
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>Request path ("/v1/traces", "/v1/metrics") and body of every post so far.</summary>
    public ConcurrentQueue<(string Path, byte[] Body)> Posts { get; } = new();

    public byte[][] BodiesTo(string path) => Posts.Where(p => p.Path == path).Select(p => p.Body).ToArray();

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
            {
                return; // stopped
            }
            try
            {
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                Posts.Enqueue((context.Request.Url?.AbsolutePath ?? "", body.ToArray()));
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
                context.Response.ContentLength64 = 0;
                context.Response.Close();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or HttpListenerException)
            {
                // A post cut off mid-body (an exporter's process exiting during its final flush, or that flush racing Dispose) is
                // dropped, as a collector drops it; every post received whole is kept.
                if (!listener.IsListening)
                    return;
            }
        }
    }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        loop.Wait(TimeSpan.FromSeconds(5));
    }
}
