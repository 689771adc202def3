using System.Globalization;
using System.Net;

namespace Dnm.Tests.Shared;

/// <summary>
/// A real HTTP server (HttpListener on 127.0.0.1) serving the files of one folder with HEAD, GET and single Range
/// requests, as nginx or S3 do. Faults for the tests: the first <see cref="CutsLeft"/> bodies are cut off after
/// <see cref="CutAfter"/> bytes (the connection is aborted), and <see cref="IgnoreRange"/> answers 200 with the whole
/// file, as Python's http.server does.
/// </summary>
internal sealed class RangeFileServer : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly string root;
    private readonly Task loop;
    private int requests;

    public RangeFileServer(string root)
    {
        this.root = root;
        Port = TestPorts.Next();
        listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        listener.Start();
        loop = Task.Run(Serve);
    }

    public int Port { get; }

    public string BaseUrl => $"http://127.0.0.1:{Port}/";

    public int CutsLeft;

    public int CutAfter = 100;

    public bool IgnoreRange { get; set; }

    /// <summary>Requests answered so far.</summary>
    public int Requests => Volatile.Read(ref requests);

    /// <summary>Body bytes sent so far.</summary>
    public long BytesSent;

    private async Task Serve()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = Task.Run(() => Answer(context));
        }
    }

    private async Task Answer(HttpListenerContext context)
    {
        Interlocked.Increment(ref requests);
        var response = context.Response;
        try
        {
            var name = Uri.UnescapeDataString(context.Request.Url!.AbsolutePath.TrimStart('/'));
            var path = Path.Combine(root, name);
            if (name.Contains("..", StringComparison.Ordinal) || !File.Exists(path))
            {
                response.StatusCode = 404;
                response.Close();
                return;
            }
            var bytes = await File.ReadAllBytesAsync(path);
            long start = 0, end = bytes.Length - 1;
            var range = context.Request.Headers["Range"];
            if (range is not null && !IgnoreRange && range.StartsWith("bytes=", StringComparison.Ordinal))
            {
                var parts = range["bytes=".Length..].Split('-');
                start = long.Parse(parts[0], CultureInfo.InvariantCulture);
                if (parts[1].Length > 0) end = Math.Min(end, long.Parse(parts[1], CultureInfo.InvariantCulture));
                response.StatusCode = 206;
                response.AddHeader("Content-Range", $"bytes {start}-{end}/{bytes.Length}");
            }
            response.AddHeader("Accept-Ranges", "bytes");
            response.ContentLength64 = end - start + 1;
            if (context.Request.HttpMethod == "HEAD")
            {
                response.Close();
                return;
            }
            int length = (int)(end - start + 1);
            if (Interlocked.Decrement(ref CutsLeft) >= 0 && length > CutAfter)
            {
                await response.OutputStream.WriteAsync(bytes.AsMemory((int)start, CutAfter));
                await response.OutputStream.FlushAsync();
                Interlocked.Add(ref BytesSent, CutAfter);
                response.Abort();
                return;
            }
            await response.OutputStream.WriteAsync(bytes.AsMemory((int)start, length));
            Interlocked.Add(ref BytesSent, length);
            response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
        {
            // The client went away.
        }
    }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try { loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
