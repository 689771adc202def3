using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace Dnm.Node.Serving;

/// <summary>One encoded image of a request and what to call it in answers and errors.</summary>
public sealed record EncodedImage(string Name, byte[] Bytes);

/// <summary>
/// Reads the images of <c>POST /v1/place</c>: the raw body as one image (image/png, image/jpeg, image/webp,
/// application/octet-stream or no type), or multipart/form-data with one image per part. Body size is bounded by
/// Kestrel (<see cref="ServerOptions.MaxBodyBytes"/>), the number of parts by <see cref="ServerOptions.MaxBatch"/>.
/// </summary>
public static class PlaceRequest
{
    public static async Task<IReadOnlyList<EncodedImage>> ReadAsync(HttpRequest request, ServerOptions options, CancellationToken cancel)
    {
        var type = request.ContentType;
        if (type is not null && type.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase))
            return await ReadMultipartAsync(request, type, options, cancel);
        if (type is not null && !IsImageType(type))
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                $"Content-Type {type} is not accepted: send one image as image/png, image/jpeg, image/webp or application/octet-stream, or several as multipart/form-data");
        var body = await ReadAllAsync(request.Body, cancel);
        return [new EncodedImage("body", body)];
    }

    private static bool IsImageType(string type)
    {
        var media = type.Split(';')[0].Trim();
        return media.StartsWith("image/", StringComparison.OrdinalIgnoreCase) || media.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<IReadOnlyList<EncodedImage>> ReadMultipartAsync(HttpRequest request, string type, ServerOptions options, CancellationToken cancel)
    {
        if (!MediaTypeHeaderValue.TryParse(type, out var media) || !media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            throw Malformed($"Content-Type {type} is not multipart/form-data");
        var boundary = HeaderUtilities.RemoveQuotes(media.Boundary).Value;
        if (string.IsNullOrWhiteSpace(boundary) || boundary.Length > 200)
            throw Malformed("the multipart Content-Type has no valid boundary parameter");
        var reader = new MultipartReader(boundary, request.Body) { HeadersCountLimit = 16, HeadersLengthLimit = 8 * 1024 };
        var images = new List<EncodedImage>();
        try
        {
            while (await reader.ReadNextSectionAsync(cancel) is { } section)
            {
                if (images.Count == options.MaxBatch)
                    throw new ApiException(StatusCodes.Status413PayloadTooLarge, "too_many_images",
                        $"the request holds more than {options.MaxBatch} images (--max-batch): send them in several requests");
                var name = PartName(section, images.Count);
                images.Add(new EncodedImage(name, await ReadAllAsync(section.Body, cancel)));
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException && e is not BadHttpRequestException)
        {
            throw Malformed($"the multipart body is malformed ({e.Message.TrimEnd('.')})");
        }
        if (images.Count == 0) throw Malformed("the multipart body holds no part: send one image per part");
        return images;
    }

    private static string PartName(MultipartSection section, int index)
    {
        if (section.ContentDisposition is { } d && ContentDispositionHeaderValue.TryParse(d, out var disposition))
        {
            var file = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value;
            if (!string.IsNullOrEmpty(file)) return file;
            var field = HeaderUtilities.RemoveQuotes(disposition.Name).Value;
            if (!string.IsNullOrEmpty(field)) return $"{field}[{index}]";
        }
        return $"part {index}";
    }

    private static async Task<byte[]> ReadAllAsync(Stream body, CancellationToken cancel)
    {
        using var buffer = new MemoryStream();
        await body.CopyToAsync(buffer, cancel);
        return buffer.ToArray();
    }

    private static ApiException Malformed(string message) => new(StatusCodes.Status400BadRequest, "malformed_multipart", message);
}
