using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Prometheus;

namespace Dnm.Node.Telemetry;

/// <summary>
/// The process's HTTP endpoint: GET /metrics (Prometheus text format), /healthz (the process is alive)
/// and /readyz (training has started: the engine is built and stepping). Kestrel rather than
/// prometheus-net's HttpListener-based MetricServer: MetricServer serves one path only, and HttpListener
/// matches the Host header against the bound name, so a scrape by pod IP of a server bound to a DNS name fails.
/// </summary>
public sealed class MetricsEndpoint : IDisposable
{
    private readonly WebApplication app;
    private readonly ScrapeLog scrapes;

    private MetricsEndpoint(WebApplication app, IReadOnlyList<string> urls, ScrapeLog scrapes)
    {
        this.app = app;
        Urls = urls;
        this.scrapes = scrapes;
    }

    /// <summary>Where it listens, e.g. "http://[::]:9464" (the bound port where 0 was asked for).</summary>
    public IReadOnlyList<string> Urls { get; }

    /// <param name="addresses">Addresses to bind; empty for every interface.</param>
    /// <param name="port">TCP port; 0 picks a free one (tests).</param>
    /// <exception cref="IOException">The port is taken, or an address is not this host's.</exception>
    public static MetricsEndpoint Start(IReadOnlyList<IPAddress> addresses, int port, CollectorRegistry registry, Func<bool> ready)
    {
        // The empty builder: no configuration files, no console logging, nothing but Kestrel and routing.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            if (addresses.Count == 0) kestrel.ListenAnyIP(port);
            foreach (var address in addresses) kestrel.Listen(address, port);
        });
        builder.Services.AddRouting();
        var app = builder.Build();
        var scrapes = new ScrapeLog();
        app.Use(async (context, next) =>
        {
            if (context.Request.Path != "/metrics")
            {
                await next(context);
                return;
            }
            var ticket = scrapes.Begin();
            await next(context);
            if (context.Response.StatusCode == 200) scrapes.Completed(ticket);
        });
        app.UseRouting();
        app.MapMetrics("/metrics", registry);
        app.MapGet("/healthz", () => "ok\n");
        app.MapGet("/readyz", () => ready() ? Results.Text("ready\n") : Results.Text("not ready: training has not started\n", statusCode: 503));
        try
        {
            app.StartAsync().GetAwaiter().GetResult();
        }
        catch
        {
            ((IDisposable)app).Dispose();
            throw;
        }
        var urls = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];
        return new MetricsEndpoint(app, urls, scrapes);
    }

    /// <summary>Completed scrapes of /metrics so far.</summary>
    public long Scrapes => scrapes.Count;

    /// <summary>
    /// Waits until a scrape that began after this call has completed, so the numbers of a run's end (the
    /// final evaluation, the last steps) reach Prometheus before the process exits: a pulled metric that is
    /// never pulled is lost. Returns at once when nothing has scraped yet; otherwise waits about two scrape
    /// intervals (as measured), never longer than <paramref name="limit"/>. True if the scrape came.
    /// </summary>
    public bool AwaitNextScrape(TimeSpan limit, CancellationToken cancel) => scrapes.AwaitNext(limit, cancel);

    public void Dispose()
    {
        // A scrape in flight is not worth waiting for at shutdown.
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        app.StopAsync(patience.Token).GetAwaiter().GetResult();
        ((IDisposable)app).Dispose();
    }
}
