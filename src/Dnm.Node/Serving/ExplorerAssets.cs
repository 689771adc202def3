using System.Reflection;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Dnm.Node.Serving;

/// <summary>
/// The explorer page: plain HTML, CSS and JavaScript embedded in this assembly (Serving/wwwroot). No CDN, no external
/// font, no request to any other host: the Content-Security-Policy says so to the browser too.
/// </summary>
public static class ExplorerAssets
{
    public const string Index = "index.html";
    public static readonly string[] Names = [Index, "explorer.js", "explorer.css"];

    /// <summary>Everything from this origin (or this folder, for the static copy); images also from data: and blob: URLs.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'";

    // Where index.html loads the static copy's data (data.js); the server's page fetches /v1/... instead.
    private const string DataPlaceholder = "<!--dnm:static-data-->";

    public static byte[] Read(string name, bool staticData)
    {
        using var stream = typeof(ExplorerAssets).Assembly.GetManifestResourceStream("wwwroot/" + name)
            ?? throw new InvalidOperationException($"the explorer asset {name} is not embedded in {typeof(ExplorerAssets).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var text = reader.ReadToEnd();
        if (name == Index) text = text.Replace(DataPlaceholder, staticData ? "<script src=\"data.js\"></script>" : "", StringComparison.Ordinal);
        return Encoding.UTF8.GetBytes(text);
    }

    public static string ContentType(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };

    public static void SecurityHeaders(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
    }
}
