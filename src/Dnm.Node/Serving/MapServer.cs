using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Threading.RateLimiting;
using Dnm.Core.Explore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Prometheus;

namespace Dnm.Node.Serving;

/// <summary>
/// The HTTP server of `dnm serve` and `dnm explore` (Kestrel, as the metrics endpoint): placement
/// (<c>POST /v1/place</c>), the lattice (<c>GET /v1/map</c> and its layers, components and prototypes), and with a placed
/// dataset the members of each node and the explorer page. <c>/metrics</c> counts requests and times them per route;
/// <c>/healthz</c> answers while the process lives, <c>/readyz</c> once the map (and the explorer's dataset) is loaded.
/// Every refusal is a 4xx (or 503 when busy) with a JSON <see cref="ApiError"/>; an unexpected failure is a JSON 500
/// for that request and never stops the server.
/// </summary>
public sealed class MapServer : IAsyncDisposable
{
    /// <summary>The API's JSON: snake_case names.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public const int MaxPageSize = 256;

    private readonly WebApplication app;
    private readonly ServerState state;

    private MapServer(WebApplication app, ServerState state, IReadOnlyList<string> urls)
    {
        this.app = app;
        this.state = state;
        Urls = urls;
    }

    /// <summary>Where it listens, e.g. "http://127.0.0.1:8080" (the bound port where 0 was asked for).</summary>
    public IReadOnlyList<string> Urls { get; }

    /// <summary>The loaded map; until <see cref="ServerState.Ready"/> is set, /readyz and the API answer 503.</summary>
    public ServerState State => state;

    /// <param name="explorerPage">Serve the explorer page at / (dnm explore).</param>
    public static async Task<MapServer> StartAsync(ServerOptions options, ServerState state, bool explorerPage, Action<string>? log = null)
    {
        options = options.Validated();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            kestrel.AddServerHeader = false;
            if (options.Addresses.Count == 0) kestrel.ListenAnyIP(options.Port);
            foreach (var address in options.Addresses) kestrel.Listen(address, options.Port);
        });
        builder.Services.AddRouting();
        var app = builder.Build();
        var metrics = new ServerMetrics(state.Registry);
        // Placements wait for a turn in a bounded queue: beyond it the server says it is busy rather than piling up bodies.
        var limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = options.MaxConcurrency,
            QueueLimit = options.MaxQueue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });

        app.UseRouting();
        app.UseHttpMetrics(o =>
        {
            o.RequestCount.Registry = state.Registry;
            o.RequestDuration.Registry = state.Registry;
            o.InProgress.Registry = state.Registry;
        });

        // Inside the request metrics, so that a refusal is counted with the status it was answered with.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (ApiException e) when (!context.Response.HasStarted)
            {
                // A refused body may be left unread, and Kestrel then closes the connection: say so, or a client would
                // send its next request on a connection that is going away.
                if (e.Status == StatusCodes.Status413PayloadTooLarge) context.Response.Headers.Connection = "close";
                await e.Error.Result(e.Status).ExecuteAsync(context);
            }
            catch (BadHttpRequestException e) when (!context.Response.HasStarted)
            {
                // Kestrel's own refusals: above all a body over --max-body (413).
                var code = e.StatusCode == StatusCodes.Status413PayloadTooLarge ? "body_too_large" : "bad_request";
                var message = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                    ? $"the request body is larger than the server's limit of {options.MaxBodyBytes} bytes (--max-body): send fewer or smaller images"
                    : e.Message;
                context.Response.Headers.Connection = "close";
                await new ApiError(code, message).Result(e.StatusCode).ExecuteAsync(context);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away: nobody to answer.
            }
            catch (Exception e) when (!context.Response.HasStarted)
            {
                log?.Invoke($"error: {context.Request.Method} {context.Request.Path}: {e.GetType().Name}: {e.Message}");
                await new ApiError("internal", $"{e.GetType().Name}: {e.Message}").Result(StatusCodes.Status500InternalServerError).ExecuteAsync(context);
            }
        });
        app.MapMetrics("/metrics", state.Registry);
        app.MapGet("/healthz", () => "ok\n");
        app.MapGet("/readyz", () => state.Ready
            ? Results.Text("ready\n")
            : Results.Text($"not ready: {state.Status}\n", statusCode: StatusCodes.Status503ServiceUnavailable));

        app.MapPost("/v1/place", async (HttpContext context) =>
        {
            var explorer = state.Require();
            var (k, latent, convert) = PlaceQuery(context.Request.Query, explorer.Placer.Nodes);
            if (context.Request.ContentLength > options.MaxBodyBytes)
                throw new ApiException(StatusCodes.Status413PayloadTooLarge, "body_too_large",
                    $"the request body ({context.Request.ContentLength} bytes) is larger than the server's limit of {options.MaxBodyBytes} bytes (--max-body): send fewer or smaller images");
            using var lease = await limiter.AcquireAsync(1, context.RequestAborted);
            if (!lease.IsAcquired)
            {
                metrics.Rejected.Inc();
                context.Response.Headers.RetryAfter = "1";
                throw new ApiException(StatusCodes.Status503ServiceUnavailable, "busy",
                    $"the server is placing {options.MaxConcurrency} requests and {options.MaxQueue} more are waiting (--max-concurrency, --max-queue): retry shortly");
            }
            using var inFlight = metrics.InFlight.TrackInProgress();
            var images = await PlaceRequest.ReadAsync(context.Request, options, context.RequestAborted);
            var shape = explorer.Placer.Shape;
            var pixels = new float[images.Count * shape.Pixels];
            for (var i = 0; i < images.Count; i++)
            {
                var result = ImageIntake.TryDecode(images[i].Bytes, shape, options.MaxImagePixels, convert, pixels.AsSpan(i * shape.Pixels, shape.Pixels));
                if (!result.Ok) throw Refused(images[i].Name, result);
            }
            var placed = explorer.Placer.Place(pixels, images.Count, k, latent);
            metrics.Images.Inc(images.Count);
            var cols = explorer.Placer.Cols;
            return Results.Json(new
            {
                placements = placed.Select((p, i) => new
                {
                    name = images[i].Name,
                    row = p.Bmu / cols,
                    col = p.Bmu % cols,
                    node = p.Bmu,
                    distance = p.Distance,
                    nearest = p.Nearest.Select(n => new { row = n.Node / cols, col = n.Node % cols, node = n.Node, distance = n.Distance }),
                    latent = p.Latent,
                }),
            }, Json);
        });

        app.MapGet("/v1/map", () => Results.Json(state.Require().Info(), Json));
        app.MapGet("/v1/map/layers", () => Results.Json(state.Require().Layers(), Json));
        app.MapGet("/v1/map/components/{dimension}", (string dimension) =>
        {
            var explorer = state.Require();
            var d = Int(dimension, "dimension", 0, explorer.Placer.Dim - 1);
            return Results.Json(new { dimension = d, values = explorer.Component(d) }, Json);
        });
        app.MapGet("/v1/map/prototypes.png", () => Results.Bytes(state.Require().PrototypeSprite.Value, "image/png"));
        app.MapGet("/v1/nodes/{node}/members", (string node, HttpRequest request) =>
        {
            var explorer = state.RequireMembers();
            var (n, page, size) = MembersQuery(node, request.Query, explorer.Placer.Nodes);
            return Results.Json(explorer.Page(n, page, size), Json);
        });
        app.MapGet("/v1/nodes/{node}/members.png", (string node, HttpRequest request) =>
        {
            var explorer = state.RequireMembers();
            var (n, page, size) = MembersQuery(node, request.Query, explorer.Placer.Nodes);
            var columns = request.Query.ContainsKey("columns") ? Int(request.Query["columns"], "columns", 1, MaxPageSize) : 8;
            return Results.Bytes(explorer.PageSprite(n, page, size, columns), "image/png");
        });

        if (explorerPage)
        {
            foreach (var asset in ExplorerAssets.Names)
            {
                var path = asset == ExplorerAssets.Index ? "/" : "/" + asset;
                app.MapGet(path, (HttpContext context) =>
                {
                    ExplorerAssets.SecurityHeaders(context.Response.Headers);
                    return Results.Bytes(ExplorerAssets.Read(asset, staticData: false), ExplorerAssets.ContentType(asset));
                });
            }
        }
        app.MapFallback(() => new ApiError("not_found", "no such path: see /v1/map, /v1/place, /healthz, /readyz and /metrics").Result(StatusCodes.Status404NotFound));

        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            limiter.Dispose();
            throw;
        }
        var urls = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];
        app.Lifetime.ApplicationStopped.Register(limiter.Dispose);
        return new MapServer(app, state, urls);
    }

    private static ApiException Refused(string name, IntakeResult result) => result.Failure switch
    {
        IntakeFailure.TooManyPixels => new ApiException(StatusCodes.Status413PayloadTooLarge, "too_many_pixels", $"{name} {result.Message}"),
        IntakeFailure.WrongChannels => new ApiException(StatusCodes.Status422UnprocessableEntity, "wrong_channels", $"{name} {result.Message}"),
        _ => new ApiException(StatusCodes.Status422UnprocessableEntity, "not_an_image", $"{name} {result.Message}"),
    };

    private static (int K, bool Latent, bool Convert) PlaceQuery(IQueryCollection query, int nodes) =>
        (query.ContainsKey("k") ? Int(query["k"], "k", 1, nodes) : 1, Bool(query, "latent"), Bool(query, "convert"));

    private static (int Node, int Page, int Size) MembersQuery(string node, IQueryCollection query, int nodes) =>
        (Int(node, "node", 0, nodes - 1),
         query.ContainsKey("page") ? Int(query["page"], "page", 0, int.MaxValue) : 0,
         query.ContainsKey("size") ? Int(query["size"], "size", 1, MaxPageSize) : 48);

    private static int Int(string? text, string name, int min, int max)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max) return v;
        throw new ApiException(StatusCodes.Status400BadRequest, "bad_parameter", $"{name} must be a whole number from {min} to {max}, got '{text}'");
    }

    private static bool Bool(IQueryCollection query, string name)
    {
        if (!query.TryGetValue(name, out var values)) return false;
        return values.ToString().ToLowerInvariant() switch
        {
            "" or "true" or "1" => true,
            "false" or "0" => false,
            var other => throw new ApiException(StatusCodes.Status400BadRequest, "bad_parameter", $"{name} must be true or false, got '{other}'"),
        };
    }

    public async ValueTask DisposeAsync()
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await app.StopAsync(patience.Token);
        await app.DisposeAsync();
    }

    /// <summary>Blocks until <paramref name="cancel"/> fires (Ctrl+C, SIGTERM).</summary>
    public async Task WaitAsync(CancellationToken cancel)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancel);
        }
        catch (OperationCanceledException)
        {
        }
    }
}

/// <summary>The service's own metrics beside the per-route request counts and durations of prometheus-net.</summary>
internal sealed class ServerMetrics(CollectorRegistry registry)
{
    private static MetricFactory Factory(CollectorRegistry registry) => Metrics.WithCustomRegistry(registry);

    public Gauge InFlight { get; } = Factory(registry).CreateGauge("dnm_serve_placements_in_flight", "Placement requests holding a turn (reading, decoding, embedding).");
    public Counter Rejected { get; } = Factory(registry).CreateCounter("dnm_serve_rejected_total", "Placement requests refused with 503 because every turn and queue place was taken.");
    public Counter Images { get; } = Factory(registry).CreateCounter("dnm_serve_images_placed_total", "Images placed.");
}

/// <summary>What the server serves, filled in once loading is done: until then it answers 503 with <see cref="Status"/>.</summary>
public sealed class ServerState
{
    private volatile MapExplorer? explorer;
    private volatile string status = "loading the checkpoint";

    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    public bool Ready => explorer is not null;
    public string Status => status;

    public void Report(string what) => status = what;

    public void Publish(MapExplorer loaded)
    {
        // Decode the prototypes now, not in the first page's request.
        _ = loaded.PrototypeSprite.Value;
        explorer = loaded;
        status = "ready";
    }

    public MapExplorer Require() => explorer ?? throw new ApiException(StatusCodes.Status503ServiceUnavailable, "not_ready", $"the map is not loaded yet ({status}): retry shortly");

    public MapExplorer RequireMembers()
    {
        var e = Require();
        return e.Members is null
            ? throw new ApiException(StatusCodes.Status404NotFound, "no_dataset", "this server placed no dataset: run `dnm explore --checkpoint CKPT --dataset DS` to browse members")
            : e;
    }
}
